import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/load.js';
import { OPTIONS, type Config } from '../../src/config/schema.js';
import { parseHostPort } from '../../src/net/address.js';
import { bindPolicyError, httpBindPolicyError, SourceFilter } from '../../src/receive/source-filter.js';
import { OTEL_VARIABLES } from '../../src/config/otel-env.js';
import { ROOT } from '../helpers/bridge-process.js';
import { findTool } from '../helpers/tools.js';
import { BRIDGE_SCOPE, REQUEST_ID_KEYS } from '../../src/join/app-span.js';

/**
 * Static validation of the deployment files: Dockerfile, docker-compose.yml,
 * the Collector and Prometheus configs, the systemd unit and the Kubernetes
 * DaemonSet. No container is started (there is no engine on CI); what can be
 * checked without one is: the files parse, everything they reference exists,
 * the bridge's arguments and environment in each are accepted by the real
 * config loader, and ports and addresses agree across files.
 */
const DOCKER_COMPOSE = findTool('docker-compose');

const read = (p: string) => readFileSync(join(ROOT, p), 'utf8');
const yamlOf = (p: string) => parseYaml(read(p)) as Record<string, unknown>;
const portOf = (hostPort: string) => parseHostPort(hostPort).port;
const config = (argv: string[], env: Record<string, string> = {}): Config => {
  const c = loadConfig(argv, env);
  if (c.kind !== 'run') throw new Error(c.kind);
  return c.config;
};

/** The bridge's own defaults, from the one schema. */
const DEFAULT_CSM_PORT = portOf((OPTIONS.listen.schema.parse(undefined) as string[])[0]!);
const DEFAULT_ADMIN_PORT = portOf(OPTIONS.admin.schema.parse(undefined) as string);
const OTLP_HTTP_PORT = 4318;

/** Every environment variable the bridge reads: the schema's, the SDK's AWS_CSM_HOST/PORT, and the OTel SDK's. */
const KNOWN_ENV = new Set([...Object.values(OPTIONS).flatMap((o) => [...o.env]), 'AWS_CSM_HOST', 'AWS_CSM_PORT', 'AWS_CSM_BRIDGE_CONFIG']);
const isKnownEnv = (name: string) => KNOWN_ENV.has(name) || OTEL_VARIABLES.some((v) => v.name === name);
/** The admin listener under the HTTP listener policy (a non-loopback one needs allowRemoteHttp). */
const adminPolicyError = (c: Config) =>
  httpBindPolicyError(c.admin === 'off' ? [] : [{ what: 'admin listener', host: parseHostPort(c.admin).host, setting: '--admin' }], c.allowRemoteHttp);

// --- Dockerfile --------------------------------------------------------------

interface Instruction {
  op: string;
  args: string;
}
/** Dockerfile instructions, with line continuations joined and comments dropped. */
function dockerfile(path: string): Instruction[] {
  const text = read(path).replace(/\\\n/g, ' ');
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^(\w+)\s+(.*)$/.exec(l);
      if (!m) throw new Error(`${path}: cannot parse "${l}"`);
      return { op: m[1]!.toUpperCase(), args: m[2]! };
    });
}
/** ENV KEY=VALUE pairs (the KEY=VALUE form only). */
function dockerEnv(ins: Instruction[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const i of ins.filter((x) => x.op === 'ENV')) {
    for (const m of i.args.matchAll(/(\w+)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
  }
  return env;
}
const json = <T>(s: string): T => JSON.parse(s) as T;

describe('Dockerfile', () => {
  const ins = dockerfile('Dockerfile');
  const stages = ins.filter((i) => i.op === 'FROM');
  const runtimeStart = ins.findIndex((i) => i === stages[stages.length - 1]);
  const runtime = ins.slice(runtimeStart);

  it('multi-stage: a build stage compiles, the runtime stage has production dependencies only and runs as non-root', () => {
    expect(stages.map((s) => s.args)).toEqual([expect.stringMatching(/^node:20[-\w.]* AS build$/), expect.stringMatching(/^node:20[-\w.]* AS runtime$/)]);
    const build = ins.slice(0, runtimeStart);
    expect(build.some((i) => i.op === 'RUN' && /npm ci\b/.test(i.args) && !/--omit=dev/.test(i.args))).toBe(true);
    expect(build.some((i) => i.op === 'RUN' && /npm run build/.test(i.args))).toBe(true);
    expect(runtime.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    expect(runtime.some((i) => i.op === 'COPY' && /--from=build \/app\/dist/.test(i.args))).toBe(true);
    // The recvmmsg receiver: built where the toolchain is, copied into the runtime stage.
    expect(build.some((i) => i.op === 'RUN' && /apt-get install .*python3.*make.*g\+\+/.test(i.args))).toBe(true);
    expect(runtime.some((i) => i.op === 'COPY' && /--from=build \/app\/build\/Release\/udp_batch\.node/.test(i.args))).toBe(true);
    const user = runtime.filter((i) => i.op === 'USER').map((i) => i.args);
    expect(user).toHaveLength(1);
    expect(user[0]).not.toMatch(/^(root|0)(:|$)/);
    expect(json<string[]>(runtime.find((i) => i.op === 'ENTRYPOINT')!.args)).toEqual(['node', 'dist/cli.js']);
  });

  it('copies only files that exist and that .dockerignore does not exclude', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'));
    const sources = ins
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1));
    expect(sources.sort()).toEqual(['binding.gyp', 'config', 'native', 'package-lock.json', 'package-lock.json', 'package.json', 'package.json', 'scripts/build-native.mjs', 'scripts/bundle.mjs', 'src', 'tsconfig.json', 'web']);
    // The build stage runs package.json's install script: the file it runs is there before it.
    const scripts = json<{ scripts: { install: string; prepare?: string } }>(read('package.json')).scripts;
    const script = /^node (\S+)$/.exec(scripts.install)?.[1];
    const npmCi = ins.findIndex((i) => i.op === 'RUN' && /npm ci\b/.test(i.args));
    expect(ins.slice(0, npmCi).some((i) => i.op === 'COPY' && i.args.split(/\s+/)[0] === script), scripts.install).toBe(true);
    // npm ci runs prepare (the build) too: before src/ is copied, it must not run scripts, and the install script is then run on its own.
    const srcCopied = ins.findIndex((i) => i.op === 'COPY' && i.args.split(/\s+/)[0] === 'src');
    if (scripts.prepare !== undefined && npmCi < srcCopied) {
      expect(ins[npmCi]!.args).toMatch(/npm ci --ignore-scripts\b/);
      expect(ins[npmCi]!.args).toMatch(/npm run install\b/);
    }
    // So does npm run build with its build script's files.
    const buildScripts = [...json<{ scripts: { build: string } }>(read('package.json')).scripts.build.matchAll(/node (\S+)/g)].map((m) => m[1]!);
    const npmBuild = ins.findIndex((i) => i.op === 'RUN' && /npm run build\b/.test(i.args));
    expect(buildScripts.length).toBeGreaterThan(0);
    for (const f of buildScripts) expect(ins.slice(0, npmBuild).some((i) => i.op === 'COPY' && i.args.split(/\s+/)[0] === f), f).toBe(true);
    for (const s of sources) {
      expect(existsSync(join(ROOT, s)), s).toBe(true);
      expect(ignored, s).not.toContain(s);
    }
    // dist/cli.js reads package.json from the package root at start: it is in the image.
    expect(read('src/cli.ts')).toContain("new URL('package.json', PACKAGE_ROOT)");
  });

  it('listens on every interface at the default ports, with a source allow-list the real config loader accepts', () => {
    const env = dockerEnv(runtime);
    for (const k of Object.keys(env).filter((k) => k !== 'NODE_ENV')) expect(isKnownEnv(k), k).toBe(true);
    const c = config([], env);
    expect(c.listen).toEqual([`0.0.0.0:${DEFAULT_CSM_PORT}`]);
    expect(c.admin).toBe(`0.0.0.0:${DEFAULT_ADMIN_PORT}`);
    expect(c.allowSource.length).toBeGreaterThan(0);
    expect(bindPolicyError(c.listen, c.allowSource, c.allowAnySource)).toBeUndefined();
    expect(adminPolicyError(c)).toBeUndefined();
    const expose = runtime.filter((i) => i.op === 'EXPOSE').flatMap((i) => i.args.split(/\s+/));
    expect(expose.sort()).toEqual([`${DEFAULT_CSM_PORT}/udp`, `${DEFAULT_ADMIN_PORT}/tcp`].sort());
  });

  it('HEALTHCHECK uses node fetch (no curl in the slim image) on the admin port', () => {
    const hc = runtime.find((i) => i.op === 'HEALTHCHECK')!;
    const cmd = json<string[]>(hc.args.slice(hc.args.indexOf('CMD') + 3).trim());
    expect(cmd.slice(0, 2)).toEqual(['node', '-e']);
    expect(cmd[2]).toContain(`fetch('http://127.0.0.1:${DEFAULT_ADMIN_PORT}/healthz')`);
    // The check script itself is valid JavaScript.
    expect(() => new Function(cmd[2]!)).not.toThrow();
  });
});

// --- docker-compose.yml ------------------------------------------------------

interface ComposeService {
  build?: string | { context: string; dockerfile?: string };
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  networks?: string[] | Record<string, { ipv4_address?: string } | null>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[];
}
const compose = yamlOf('docker-compose.yml') as {
  services: Record<string, ComposeService>;
  networks: Record<string, { ipam?: { config: { subnet: string }[] } }>;
};
const services = compose.services;

describe('docker-compose.yml', () => {
  it.skipIf(!DOCKER_COMPOSE)('`docker-compose config` accepts it', () => {
    const r = spawnSync(DOCKER_COMPOSE!, ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('has the demo services, pinned images, and only references services and files that exist', () => {
    expect(Object.keys(services).sort()).toEqual(['bridge', 'jaeger', 'moto', 'otel-collector', 'prometheus', 'sample-app']);
    for (const [name, s] of Object.entries(services)) {
      if (s.image && !s.build) expect(s.image, name).toMatch(/:[\w.-]+$/);
      expect(s.image ?? '', name).not.toMatch(/:latest$/);
      if (s.build) {
        const ctx = typeof s.build === 'string' ? s.build : s.build.context;
        expect(statSync(join(ROOT, ctx)).isDirectory(), name).toBe(true);
        expect(existsSync(join(ROOT, ctx, 'Dockerfile')), name).toBe(true);
      }
      for (const v of s.volumes ?? []) {
        const host = v.split(':')[0]!;
        if (host.startsWith('.')) expect(existsSync(join(ROOT, host)), `${name}: ${host}`).toBe(true);
      }
      for (const d of s.depends_on ?? []) expect(Object.keys(services), name).toContain(d);
    }
  });

  it('the sample app image copies files that exist in its context', () => {
    const s = services['sample-app']!;
    const ctx = typeof s.build === 'string' ? s.build : s.build!.context;
    for (const i of dockerfile(join(ctx, 'Dockerfile')).filter((x) => x.op === 'COPY')) {
      for (const src of i.args.split(/\s+/).slice(0, -1)) expect(existsSync(join(ROOT, ctx, src)), src).toBe(true);
    }
    expect(read(join(ctx, 'requirements.txt'))).toMatch(/^boto3\b/m);
  });

  it('the bridge: default ports, a fixed IPv4 address inside its network, an allow-list covering that network', () => {
    const b = services['bridge']!;
    const env = { ...dockerEnv(dockerfile('Dockerfile')), ...b.environment };
    for (const k of Object.keys(b.environment ?? {})) expect(isKnownEnv(k), k).toBe(true);
    const c = config(b.command ?? [], env);
    expect(c.listen).toEqual([`0.0.0.0:${DEFAULT_CSM_PORT}`]);
    expect(c.admin).toBe(`0.0.0.0:${DEFAULT_ADMIN_PORT}`);
    expect(bindPolicyError(c.listen, c.allowSource, c.allowAnySource)).toBeUndefined();
    expect(adminPolicyError(c)).toBeUndefined();
    const [netName, net] = Object.entries(b.networks as Record<string, { ipv4_address: string }>)[0]!;
    const subnet = compose.networks[netName]!.ipam!.config[0]!.subnet;
    expect(new SourceFilter([subnet]).allows(net.ipv4_address)).toBe(true);
    // Senders on the network, and host processes arriving from its gateway (.1), are allowed.
    const filter = new SourceFilter(c.allowSource);
    expect(filter.allows(net.ipv4_address.replace(/\.\d+$/, '.1'))).toBe(true);
    expect(filter.allows(net.ipv4_address.replace(/\.\d+$/, '.77'))).toBe(true);
    // Published container ports are the bridge's.
    const published = (b.ports ?? []).map((p) => p.split(':').pop()!);
    expect(published.sort()).toEqual([`${DEFAULT_CSM_PORT}/udp`, String(DEFAULT_ADMIN_PORT)].sort());
    // Exports to the Collector's OTLP/HTTP receiver.
    const otlp = new URL(b.environment!['OTEL_EXPORTER_OTLP_ENDPOINT']!);
    expect(Object.keys(services)).toContain(otlp.hostname);
    expect(Number(otlp.port)).toBe(OTLP_HTTP_PORT);
  });

  it('the sample app sends CSM to the bridge by IPv4 address (botocore cannot use a name) and calls moto', () => {
    const env = services['sample-app']!.environment!;
    const bridgeNet = Object.values(services['bridge']!.networks as Record<string, { ipv4_address: string }>)[0]!;
    expect(env['AWS_CSM_ENABLED']).toBe('true');
    expect(env['AWS_CSM_HOST']).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(env['AWS_CSM_HOST']).toBe(bridgeNet.ipv4_address);
    expect(Number(env['AWS_CSM_PORT'])).toBe(DEFAULT_CSM_PORT);
    expect(env['AWS_CSM_CLIENT_ID']).toBeTruthy();
    expect(new URL(env['ENDPOINT_URL']!).hostname).toBe('moto');
    expect(new URL(env['ENDPOINT_URL']!).port).toBe('5000');
    expect(read('examples/sample-app/app.py')).toContain('ENDPOINT_URL');
  });
});

// --- Collector and Prometheus ------------------------------------------------

describe('config/otel-collector.yaml', () => {
  const col = yamlOf('config/otel-collector.yaml') as {
    receivers: Record<string, { protocols?: Record<string, { endpoint: string }> }>;
    processors: Record<string, unknown>;
    exporters: Record<string, Record<string, unknown>>;
    extensions?: Record<string, unknown>;
    service: { extensions?: string[]; pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
  };
  const typeOf = (id: string) => id.split('/')[0];

  it('pipelines reference only defined receivers, processors, exporters and extensions, and use all of them', () => {
    const used = { receivers: new Set<string>(), processors: new Set<string>(), exporters: new Set<string>() };
    for (const [name, p] of Object.entries(col.service.pipelines)) {
      expect(['traces', 'metrics', 'logs'], name).toContain(typeOf(name));
      expect(p.receivers.length, name).toBeGreaterThan(0);
      expect(p.exporters.length, name).toBeGreaterThan(0);
      for (const kind of ['receivers', 'processors', 'exporters'] as const) {
        for (const id of p[kind] ?? []) {
          expect(Object.keys(col[kind]), `${name}.${kind}`).toContain(id);
          used[kind].add(id);
        }
      }
      // memory_limiter first, batch after it (the Collector's recommended order).
      expect(p.processors?.[0], name).toBe('memory_limiter');
    }
    for (const kind of ['receivers', 'processors', 'exporters'] as const) expect([...used[kind]].sort()).toEqual(Object.keys(col[kind]).sort());
    for (const ext of col.service.extensions ?? []) expect(Object.keys(col.extensions ?? {})).toContain(ext);
  });

  it('OTLP in on 4318; traces to Jaeger with a queue and retries; metrics to the port Prometheus scrapes', () => {
    expect(portOf(col.receivers['otlp']!.protocols!['http']!.endpoint)).toBe(OTLP_HTTP_PORT);
    expect(col.service.pipelines['traces']!.exporters).toEqual(['otlp/jaeger']);
    const jaeger = col.exporters['otlp/jaeger']!;
    expect(String(jaeger['endpoint'])).toMatch(/^jaeger:4317$/);
    expect(Object.keys(services)).toContain('jaeger');
    expect(jaeger['sending_queue']).toMatchObject({ enabled: true });
    expect(jaeger['retry_on_failure']).toMatchObject({ enabled: true });
    expect(col.service.pipelines['metrics']!.exporters).toEqual(['prometheus']);

    const prom = yamlOf('config/prometheus.yml') as { scrape_configs: { static_configs: { targets: string[] }[] }[] };
    const targets = prom.scrape_configs.flatMap((s) => s.static_configs.flatMap((c) => c.targets));
    expect(targets).toEqual([`otel-collector:${portOf(String(col.exporters['prometheus']!['endpoint']))}`]);
    expect(services['otel-collector']!.volumes).toContain('./config/otel-collector.yaml:/etc/otelcol-contrib/config.yaml:ro');
    expect(services['otel-collector']!.command).toEqual(['--config=/etc/otelcol-contrib/config.yaml']);
  });
});

// --- Kubernetes --------------------------------------------------------------

describe('config/kubernetes-daemonset.yaml', () => {
  const text = read('config/kubernetes-daemonset.yaml');
  const docs = parseAllDocuments(text);

  it('parses; the DaemonSet exposes UDP 31000 as a host port and its args pass the config loader', () => {
    for (const d of docs) expect(d.errors).toEqual([]);
    const objs = docs.map((d) => d.toJS() as { kind: string; spec?: unknown }).filter(Boolean);
    const ds = objs.find((o) => o.kind === 'DaemonSet') as {
      spec: { template: { spec: { containers: { args: string[]; ports: { containerPort: number; hostPort?: number; protocol: string; name: string }[]; readinessProbe: { httpGet: { path: string; port: string } } }[] } } };
    };
    const c = ds.spec.template.spec.containers[0]!;
    expect(c.ports).toContainEqual(expect.objectContaining({ containerPort: DEFAULT_CSM_PORT, hostPort: 31000, protocol: 'UDP' }));
    const cfg = config(c.args);
    expect(cfg.listen).toEqual([`0.0.0.0:${DEFAULT_CSM_PORT}`]);
    expect(cfg.allowSource).toHaveLength(1); // the pod CIDR placeholder
    expect(bindPolicyError(cfg.listen, cfg.allowSource, cfg.allowAnySource)).toBeUndefined();
    expect(adminPolicyError(cfg)).toBeUndefined();
    const admin = c.ports.find((p) => p.name === c.readinessProbe.httpGet.port)!;
    expect(admin.containerPort).toBe(portOf(cfg.admin));
    expect(c.readinessProbe.httpGet.path).toBe('/healthz');
    // How pods reach their node's bridge (documented in the file): the downward API's host IP.
    expect(text).toMatch(/name: AWS_CSM_HOST\n#\s+valueFrom:\n#\s+fieldRef:\n#\s+fieldPath: status\.hostIP/);
  });
});

// --- systemd -----------------------------------------------------------------

describe('config/aws-csm-bridge.service', () => {
  const unit = read('config/aws-csm-bridge.service');
  const SYSTEMD_ANALYZE = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim();

  it('runs the CLI with a config file, gives the flush time to finish, and does not restart on config errors', () => {
    const exec = /^ExecStart=(.*)$/m.exec(unit)![1]!.split(' ');
    expect(exec.slice(1, 2)).toEqual(['/opt/aws-csm-bridge/dist/cli.js']);
    expect(exec.slice(2)).toEqual(['--config', '/etc/aws-csm-bridge/config.yaml']);
    const stopSec = Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)![1]);
    expect(stopSec * 1000).toBeGreaterThan(OPTIONS.shutdownTimeoutMs.schema.parse(undefined) as number);
    expect(unit).toMatch(/^RestartPreventExitStatus=2$/m);
    expect(unit).toMatch(/^DynamicUser=yes$/m);
  });

  it.skipIf(!SYSTEMD_ANALYZE)('`systemd-analyze verify` accepts it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'unit-'));
    try {
      // verify checks that ExecStart's binary exists: point it at this machine's node.
      writeFileSync(join(dir, 'aws-csm-bridge.service'), existsSync('/usr/bin/node') ? unit : unit.replace('/usr/bin/node', process.execPath));
      const r = spawnSync(SYSTEMD_ANALYZE, ['verify', join(dir, 'aws-csm-bridge.service')], { encoding: 'utf8', timeout: 60_000 });
      expect(r.stderr.split('\n').filter((l) => l.includes('aws-csm-bridge.service'))).toEqual([]);
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});


// --- The Collector fan-out to the bridge's app span listener -----------------

describe('config/otel-collector-app-join.yaml', () => {
  const text = read('config/otel-collector-app-join.yaml');
  const col = parseYaml(text) as {
    processors: Record<string, { traces?: { span: string[] } }>;
    exporters: Record<string, Record<string, unknown>>;
    receivers: Record<string, unknown>;
    service: { pipelines: Record<string, { receivers: string[]; processors?: string[]; exporters: string[] }> };
  };

  it('pipelines use only defined components; the backend path is unchanged; the copy is filtered and goes to the bridge', () => {
    for (const [name, p] of Object.entries(col.service.pipelines)) {
      for (const kind of ['receivers', 'processors', 'exporters'] as const) for (const id of p[kind] ?? []) expect(Object.keys(col[kind]), `${name}.${kind}`).toContain(id);
    }
    expect(col.service.pipelines['traces']!.processors).not.toContain('filter/csm_join');
    expect(col.service.pipelines['traces/csm_bridge']!.processors).toContain('filter/csm_join');
    expect(col.service.pipelines['traces/csm_bridge']!.exporters).toEqual(['otlphttp/csm_bridge']);
  });

  it("the filter keeps every request-id spelling the bridge indexes, and drops the bridge's own scope", () => {
    const conditions = col.processors['filter/csm_join']!.traces!.span.join('\n');
    for (const key of REQUEST_ID_KEYS) expect(conditions).toContain(`attributes["${key}"] == nil`);
    expect(conditions).toContain('attributes["rpc.system"] != "aws-api"');
    expect(conditions).toContain('attributes["rpc.system.name"] != "aws-api"');
    expect(conditions).toContain(`instrumentation_scope.name == "${BRIDGE_SCOPE}"`);
  });

  it('the bridge exporter points at the --app-otlp-http the header shows, which the config loader accepts; no retries', () => {
    const flag = /--app-otlp-http (\S+)/.exec(text)![1]!;
    expect(config(['--app-otlp-http', flag]).appOtlpHttp).toBe(flag);
    const bridge = col.exporters['otlphttp/csm_bridge']!;
    expect(new URL(String(bridge['endpoint'])).port).toBe(String(portOf(flag)));
    expect(bridge['retry_on_failure']).toMatchObject({ enabled: false });
    expect(bridge['sending_queue']).toMatchObject({ enabled: true });
  });
});
