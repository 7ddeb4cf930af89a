// What several bench scripts share: a flag's value, a free loopback port, and one real CSM call (a captured
// aws-sdk JS v2 ApiCallAttempt + ApiCall pair, S3.ListBuckets) to send many times.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..');

/** The value after `name` on the command line, or `def`. */
export const flag = (name, def) => {
  const i = process.argv.indexOf(name);
  return i >= 2 ? process.argv[i + 1] : def;
};

export const freePort = () =>
  new Promise((res) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });

/** The captured pair, parsed: { ATTEMPT, CALL } (datagram objects to shift and re-serialise). */
export function jsV2CallPair() {
  const lines = readFileSync(join(ROOT, 'test/fixtures/js_v2_sequential.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { ATTEMPT: JSON.parse(lines[0].raw), CALL: JSON.parse(lines[1].raw) };
}
