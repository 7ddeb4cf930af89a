# aws-csm-bridge container image.
#   docker build -t aws-csm-bridge .
#   docker run --rm -p 31000:31000/udp -p 127.0.0.1:31001:31001 \
#     -e OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 aws-csm-bridge
# See docs/deployment.md "Running in containers".

# --- build: full dev dependencies, TypeScript → dist/, the recvmmsg addon ------
FROM node:20-bookworm-slim AS build
# The package's install script builds the recvmmsg UDP receiver (native/udp_batch.c) with node-gyp,
# which needs python3, make and a C compiler (not in the slim image), and Node's headers (in the
# image: nodedir, so nothing is downloaded). The install script never fails the install, so
# `test -f` makes a missing addon fail the image build instead of silently using node:dgram.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json binding.gyp ./
COPY native ./native
COPY scripts/build-native.mjs ./scripts/
# Dependencies first, so their layer survives a source change: npm ci without scripts (its prepare
# would build dist/ before src/ is here), then the install script on its own.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run install --silent && test -f build/Release/udp_batch.node
COPY tsconfig.json ./
COPY src ./src
# npm run build: tsc, then this bundles dist/cli.js (esbuild, a dev dependency).
COPY scripts/bundle.mjs ./scripts/
RUN npm run build

# --- runtime: production dependencies only, non-root -------------------------
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no toolchain here; the addon comes from the build stage (same base image).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/Release/udp_batch.node ./build/Release/udp_batch.node
COPY config ./config
# The web view's page, script and styles (GET / on the admin listener; uPlot comes from node_modules).
COPY web ./web

# Inside a container the SDKs are in other containers, so the bridge listens on
# every interface. A non-loopback listen address needs a source allow-list: the
# default allows the private ranges (RFC 1918) that container networks use;
# narrow it to your network's CIDR (--allow-source / AWS_CSM_BRIDGE_ALLOW_SOURCE),
# or --allow-any-source on a network you trust. The admin endpoint listens on
# every interface too, for the health check and for `docker exec`/probes, which
# a non-loopback HTTP listener must opt into (AWS_CSM_BRIDGE_ALLOW_REMOTE_HTTP);
# publish its port only where you want /stats readable.
ENV AWS_CSM_HOST=0.0.0.0 \
    AWS_CSM_PORT=31000 \
    AWS_CSM_BRIDGE_ADMIN=0.0.0.0:31001 \
    AWS_CSM_BRIDGE_ALLOW_REMOTE_HTTP=true \
    AWS_CSM_BRIDGE_ALLOW_SOURCE=10.0.0.0/8,172.16.0.0/12,192.168.0.0/16 \
    AWS_CSM_BRIDGE_UI=false

# The "node" user of the base image (uid 1000).
USER node
EXPOSE 31000/udp 31001/tcp

# The slim image has no curl: Node's own fetch checks /healthz.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:31001/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "dist/cli.js"]
CMD []
