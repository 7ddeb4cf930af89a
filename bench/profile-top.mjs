// Summarises a V8 .cpuprofile: top functions by self time, and self time grouped by package/file.
//   node bench/profile-top.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, nArg] = process.argv.slice(2);
if (!file) throw new Error('usage: node bench/profile-top.mjs FILE.cpuprofile [N]');
const N = Number(nArg ?? 25);
const p = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = p.timeDeltas;
for (let i = 0; i < p.samples.length; i++) {
  const id = p.samples[i];
  self.set(id, (self.get(id) ?? 0) + (dt[i] ?? 0));
}
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fn = new Map();
const pkg = new Map();
for (const [id, us] of self) {
  const cf = byId.get(id).callFrame;
  const where = cf.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, 'nm:').replace(/.*\/dist\//, 'dist/');
  const k = `${cf.functionName || '(anonymous)'}  ${where}:${cf.lineNumber + 1}`;
  fn.set(k, (fn.get(k) ?? 0) + us);
  const group = where === '' ? cf.functionName || '(native)' : where.startsWith('nm:') ? where.split('/').slice(0, where.startsWith('nm:@') ? 2 : 1).join('/') : where.startsWith('node:') ? 'node:internal' : where;
  pkg.set(group, (pkg.get(group) ?? 0) + us);
}
const show = (m, n) =>
  [...m]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([k, us]) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}`)
    .join('\n');
console.log(`total sampled: ${(total / 1e6).toFixed(2)} s\n\nby function (self):\n${show(fn, N)}\n\nby file/package (self):\n${show(pkg, 25)}`);

// Inclusive time of selected functions (a function counted once per sample even when recursive).
const parent = new Map();
for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const incl = new Map();
for (let i = 0; i < p.samples.length; i++) {
  const names = new Set();
  for (let id = p.samples[i]; id !== undefined; id = parent.get(id)) names.add(byId.get(id).callFrame.functionName);
  for (const k of names) incl.set(k, (incl.get(k) ?? 0) + (dt[i] ?? 0));
}
const busy = total - (fn.get('(idle)  :0') ?? 0);
const wanted = ['onDatagram', 'decodeDatagram', 'add', 'onCorrelated', 'translate', 'write', 'startSpan', 'end', 'record', 'add', '_flushOneBatch', '_exportSpans', 'export', 'serializeSpan', 'createExportTraceServiceRequest', 'listOnTimeout', 'processTimers', 'collect', '(garbage collector)'];
console.log(`\ninclusive (share of busy ${(busy / 1e6).toFixed(2)} s):`);
for (const k of wanted) if (incl.has(k)) console.log(`${((100 * incl.get(k)) / busy).toFixed(1).padStart(5)}%  ${k}`);
