#!/usr/bin/env node
/**
 * Worst case per call of the stages that read datagram text, on adversarial strings at the
 * maximum datagram size (issue 16: every string of a datagram is the sender's choice; none may
 * make a stage super-linear). Per stage, every hostile value in every string field it reads:
 *
 *  - decode (decodeDatagram of the 64 KiB datagram), translate (the call and its attempt),
 *    observe (the policy observer: scopes, bucket, Ruby codes, AccessDenied parsing);
 *  - parseDenial alone on every message shape, and the policy document of one subject at its
 *    denial cap (MAX_DENIALS_PER_SUBJECT hostile resources for one action: the pairwise covering);
 *  - covers() on two 64 KiB patterns, covering() of 256 and 2,048 patterns of the observer's
 *    longest resource (at most MAX_COVERERS wildcards are tried as covers: linear in the list), commandLineFromProc on a 2 MB /proc cmdline (not a datagram
 *    field, but the sender's choice too).
 *
 * Each case runs --repeat times; per stage the table gives the input whose median is highest
 * (the worst case), that median, the slowest single call, and the bound the code states. No pass/fail: the figures depend on the
 * machine (and on a busy one, on its neighbours).
 *
 *   npm run build && node bench/hostile-strings.mjs [--repeat 5] [--dist DIR] [--old 1]
 *
 * --old 1 also times the regex covering that this replaced, on 2 to 4 stars only (5 run for
 * minutes).
 */
import { pathToFileURL } from 'node:url';

const argText = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
const REPEAT = Number(argText('repeat', 5));
const OLD = argText('old', '0') !== '0';
const DIST = argText('dist', undefined);
const dist = DIST === undefined ? new URL('../dist/', import.meta.url) : pathToFileURL(`${DIST.replace(/\/+$/, '')}/`);
const load = (p) => import(new URL(p, dist).href);
const { decodeDatagram } = await load('decode/decoder.js');
const { translate } = await load('translate/translate.js');
const { parseDenial } = await load('policy/denial.js');
const { PolicyObserver, MAX_DENIALS_PER_SUBJECT } = await load('policy/observer.js');
const { PolicyBuilder, covering, covers, MAX_COVERERS } = await load('policy/document.js');
const { commandLineFromProc } = await load('identity/proc-net.js');

const MAX_DATAGRAM = 65_535;
const SRC = { address: '127.0.0.1', port: 40000 };
const DECODER = { maxDatagramBytes: MAX_DATAGRAM, accessKey: 'hash', accessKeySalt: 'bench', timestampSemantics: 'auto' };
const TRANSLATE = { attemptSpanKind: 'client', rpcSemconv: 'old', jsInstrumentationKeys: false };
const N = 64_000;

/** Hostile values, each as long as a datagram allows (fields are cut to fit below). */
const rep = (s, n = N) => s.repeat(Math.ceil(n / s.length)).slice(0, n);
const HOSTILE = {
  'a-run': rep('a'),
  'star-run': rep('*'),
  'a*-stars': `arn:${rep('a*')}b`,
  'space-run': rep(' '),
  'nul-run': rep('\0'),
  'punct-run': `arn:${rep(';.,')}x`,
  'regex-meta': rep('.*+?^${}()|[]\\'),
  'astral': rep('\u{1F600}'),
  'lone-surrogates': rep('\ud800a'),
  'perform-repeat': rep(' is not authorized to perform: kms:'),
  'resource-repeat': rep(' on resource: arn:'),
  'explicit-repeat': rep(' with an explicit deny in a '),
  'implicit-repeat': rep('because no '),
  'perform-long-names': `not authorized to perform: ${rep('a', N / 2)}:${rep('b', N / 2 - 40)}!`,
  'denial+long-arn': `User: x is not authorized to perform: kms:Decrypt on resource: arn:${rep('a', N - 200)}${rep(';', 100)} because no identity-based policy allows it`,
  'denial+stars-arn': `User: x is not authorized to perform: kms:Decrypt on resource: arn:${rep('a*', 500)}b because no identity-based policy allows it`,
  's3-host-repeat': `${rep('.s3-aaaa')}.amazonaws.com`,
  's3-dualstack-repeat': `${rep('x.s3.dualstack.')}amazonaws.com.`,
  'ruby-code': `Aws::${rep('A', N / 2)}::Errors::${rep('B', N / 2 - 20)}:`,
  'retry-ua': rep(' m/A,B,C cfg/retry-mode#'),
};
/** Fields decode caps at 256 characters (longer ones are a counted reject): hostile there at 256. */
const NAME_FIELDS = ['ClientId', 'Service', 'Api', 'Region'];
const TEXT_FIELDS = [
  'UserAgent', 'Fqdn', 'AccessKey', 'SessionToken', 'AwsException', 'AwsExceptionMessage', 'SdkException', 'SdkExceptionMessage',
  'FinalAwsException', 'FinalAwsExceptionMessage', 'FinalSdkException', 'FinalSdkExceptionMessage', 'XAmznRequestId', 'XAmzRequestId', 'XAmzId2', 'DestinationIp',
];
const DENIED_MESSAGE = 'User: arn:aws:iam::1:user/x is not authorized to perform: kms:Decrypt on resource: arn:aws:kms:us-east-1:1:key/k because no identity-based policy allows it';

/** The attempt and ApiCall of one denied S3 GetObject, `field` set to `value`, cut to fit a datagram. */
function datagrams(field, value, i) {
  const base = { Version: 1, ClientId: 'bench', Service: 'S3', Api: 'GetObject', Region: 'us-east-1', UserAgent: 'aws-sdk-ruby3/3.1', Timestamp: 1_795_462_780_000 + i };
  const attempt = {
    ...base, Type: 'ApiCallAttempt', AttemptLatency: 3, HttpStatusCode: 403, Fqdn: 'b.s3.us-east-1.amazonaws.com', AccessKey: 'AKIARZPUZDIKAAEXAMPL',
    AwsException: 'AccessDenied', AwsExceptionMessage: DENIED_MESSAGE, SdkException: 'Aws::S3::Errors::AccessDenied', SdkExceptionMessage: DENIED_MESSAGE,
  };
  const call = { ...base, Type: 'ApiCall', Latency: 5, AttemptCount: 1, FinalHttpStatusCode: 403, FinalAwsException: 'AccessDenied', FinalAwsExceptionMessage: DENIED_MESSAGE };
  // Ruby's modelled errors come as SdkException with a message: the observer reads those only without an AwsException.
  if (field.startsWith('SdkException')) {
    delete attempt.AwsException;
    delete attempt.AwsExceptionMessage;
  }
  if (field.startsWith('FinalSdkException')) {
    delete call.FinalAwsException;
    delete call.FinalAwsExceptionMessage;
    Object.assign(call, { FinalSdkException: 'Aws::S3::Errors::AccessDenied', FinalSdkExceptionMessage: DENIED_MESSAGE });
  }
  const both = NAME_FIELDS.includes(field) || ['UserAgent', 'XAmznRequestId', 'XAmzRequestId'].includes(field);
  const set = (o) => {
    if (!both && field.startsWith('Final') !== (o.Type === 'ApiCall')) return;
    o[field] = NAME_FIELDS.includes(field) ? value.slice(0, 256) : value;
    // Cut the value until the datagram fits (JSON escapes make some characters 6 bytes).
    while (Buffer.byteLength(JSON.stringify(o)) > MAX_DATAGRAM) o[field] = o[field].slice(0, Math.floor(o[field].length * 0.9));
  };
  set(attempt);
  set(call);
  return [Buffer.from(JSON.stringify(attempt)), Buffer.from(JSON.stringify(call))];
}

/** Milliseconds of one call of `f`. */
function time(f) {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}
async function timeAsync(f) {
  const t = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** stage → input → the times of its repeats. */
const results = new Map();
function record(stage, input, ms) {
  let byInput = results.get(stage);
  if (!byInput) results.set(stage, (byInput = new Map()));
  let times = byInput.get(input);
  if (!times) byInput.set(input, (times = []));
  times.push(ms);
}

// --- decode, translate, observe: every hostile value in every string field
let i = 0;
for (const [name, value] of Object.entries(HOSTILE)) {
  for (const field of [...NAME_FIELDS, ...TEXT_FIELDS]) {
    const [a, c] = datagrams(field, value, i++);
    for (let r = 0; r < REPEAT; r++) {
      const observer = new PolicyObserver();
      let da;
      let dc;
      record('decode (64 KiB datagram)', `${field}=${name}`, time(() => (da = decodeDatagram(a, SRC, 0, DECODER))));
      record('decode (64 KiB datagram)', `${field}=${name}`, time(() => (dc = decodeDatagram(c, SRC, 0, DECODER))));
      if (!da.ok || !dc.ok) throw new Error(`${field}=${name}: rejected (${da.ok ? dc.reason : da.reason})`);
      const correlated = { kind: 'call', call: dc.event, attempts: [da.event], missingAttempts: 0 };
      record('translate (call + attempt)', `${field}=${name}`, time(() => translate(correlated, TRANSLATE)));
      record('observe (policy observer)', `${field}=${name}`, time(() => observer.observe(correlated)));
    }
  }
}

// --- AccessDenied parsing alone, every shape
for (const [name, value] of Object.entries(HOSTILE)) for (let r = 0; r < REPEAT; r++) record('parseDenial (message)', name, time(() => parseDenial(value)));

// --- the document of one subject at its denial cap: MAX_DENIALS_PER_SUBJECT hostile resources of kms:Decrypt
const RESOURCE_SHAPES = {
  'a*-stars': (k) => `arn:*${'a*'.repeat(240)}k${String(k).padStart(5, '0')}*b`,
  'a-run': (k) => `arn:${'a'.repeat(490)}k${String(k).padStart(5, '0')}b`,
  'mixed': (k) => (k % 2 ? `arn:*${'a*'.repeat(240)}k${String(k).padStart(5, '0')}*b` : `arn:${'a'.repeat(490)}k${k + 50_000}b`),
};
for (const [name, shape] of Object.entries(RESOURCE_SHAPES)) {
  const denials = Array.from({ length: MAX_DENIALS_PER_SUBJECT }, (_, k) => ({ service: 'S3', api: 'GetObject', action: 'kms:Decrypt', resource: shape(k), explicitDeny: false, calls: 1 }));
  const state = { version: 1, subjects: [{ client: 'bench', calls: [{ service: 'S3', api: 'GetObject', calls: 1, failed: 1, scopes: ['aws|us-east-1|123456789012|b'] }], denials }] };
  const builder = new PolicyBuilder();
  await builder.reports(state); // iam-data read once, not timed
  for (let r = 0; r < REPEAT; r++) record(`policy document (${MAX_DENIALS_PER_SUBJECT} denial resources, one action)`, name, await timeAsync(() => builder.reports(state)));
}

// --- covers / covering at their limits
const P = `arn:${'a*'.repeat(32_000)}b`;
const T = `arn:${'a'.repeat(64_000)}`;
for (let r = 0; r < REPEAT; r++) {
  record('covers (two 64 KiB patterns)', 'a*-stars vs a-run', time(() => covers(P, T)));
  record('covers (two 64 KiB patterns)', 'a*-stars vs a-run + b', time(() => covers(P, `${T}b`)));
}
/**
 * Patterns of about the observer's longest resource (512), none covering another, each check
 * reading its whole text: half wildcards `arn:*a*a*…*k<i>*b`, whose pieces are all found but the
 * last, half runs `arn:aaa…k<j>b` with other numbers.
 */
const coveringList = (n) =>
  Array.from({ length: n }, (_, k) => (k % 2 ? `arn:*${'a*'.repeat(240)}k${String(k).padStart(5, '0')}*b` : `arn:${'a'.repeat(490)}k${k + 50_000}b`));
for (const n of [256, 2_048]) {
  const list = coveringList(n);
  if (covering(list).length !== list.length) throw new Error('the covering list is meant to have no covered pattern');
  for (let r = 0; r < REPEAT; r++) record(`covering (${n} patterns of 512)`, 'stars/runs', time(() => covering(list)));
}

// --- /proc cmdline: 2 MB of empty arguments before a last one (kept: MAX_COMMAND_LINE, 1,024, as the resolver does)
const CMDLINE = `node\0${'\0'.repeat(2_000_000)}x\0`;
const CMDLINE_TAIL = `node\0x${'\0'.repeat(2_000_000)}`;
for (let r = 0; r < REPEAT; r++) {
  record('commandLineFromProc (2 MB cmdline)', 'nul-run inside', time(() => commandLineFromProc(CMDLINE, 1024)));
  record('commandLineFromProc (2 MB cmdline)', 'nul-run at the end', time(() => commandLineFromProc(CMDLINE_TAIL, 1024)));
}

const BOUNDS = {
  'decode (64 KiB datagram)': 'O(datagram bytes)',
  'translate (call + attempt)': 'O(field lengths)',
  'observe (policy observer)': 'O(field lengths); message read to 2,048 chars',
  'parseDenial (message)': 'O(2,048): reads that much of a message',
  [`policy document (${MAX_DENIALS_PER_SUBJECT} denial resources, one action)`]: `<= ${MAX_DENIALS_PER_SUBJECT} x ${MAX_COVERERS} linear checks of <= 512 chars`,
  'covers (two 64 KiB patterns)': 'O(|p| + |t|)',
  'covering (256 patterns of 512)': `<= 256 x ${MAX_COVERERS} (MAX_COVERERS) linear checks`,
  'covering (2048 patterns of 512)': `<= 2,048 x ${MAX_COVERERS} (MAX_COVERERS) linear checks`,
  'commandLineFromProc (2 MB cmdline)': 'O(cmdline bytes)',
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`hostile strings, worst case per call (node ${process.version}, repeat ${REPEAT}; figures from a busy machine are noisy)`);
console.log('worst input = the input whose median over the repeats is highest (one slow repeat is usually a GC or the neighbours)');
console.log(['stage', 'inputs', 'median of all (ms)', 'worst input', 'its median (ms)', 'slowest single call (ms)', 'bound'].join(' | '));
for (const [stage, byInput] of results) {
  const all = [...byInput.values()].flat();
  let worst = '';
  let worstMedian = -1;
  for (const [input, times] of byInput) if (median(times) > worstMedian) [worst, worstMedian] = [input, median(times)];
  console.log([stage, byInput.size, median(all).toFixed(3), worst, worstMedian.toFixed(3), Math.max(...all).toFixed(3), BOUNDS[stage] ?? ''].join(' | '));
}

if (OLD) {
  // The regex covering this replaced: `*` → `.*`, matched pattern against pattern.
  const escape = (s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  const oldCovers = (p, t) => new RegExp(`^${p.split('*').map(escape).join('.*')}$`).test(t);
  for (const stars of [2, 3, 4]) {
    const p = `arn:${'a*'.repeat(stars)}b`;
    console.log(`old regex covering, ${stars} stars vs arn:+300 a: ${time(() => oldCovers(p, `arn:${'a'.repeat(300)}`)).toFixed(1)} ms; new: ${time(() => covers(p, `arn:${'a'.repeat(300)}`)).toFixed(3)} ms`);
  }
}
