// A long-lived sender for the process-identity end-to-end test, like Go v1 or
// Java v1: ONE UDP socket kept open, sending real captured CSM datagrams
// (a .jsonl capture from test/fixtures) to 127.0.0.1:PORT with the recorded
// gaps (each capped at 200 ms). Prints its pid first, "sent N" when done, then
// keeps the socket open until SIGTERM or 30 s, whichever comes first.
// Usage: node identity-socket.cjs CAPTURE.jsonl PORT
'use strict';
const { createSocket } = require('node:dgram');
const { readFileSync } = require('node:fs');

const [file, port] = process.argv.slice(2);
const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));
const socket = createSocket('udp4');
process.stdout.write(`${process.pid}\n`);

async function main() {
  let prev;
  for (const l of lines) {
    const gapMs = prev === undefined ? 0 : Math.min(200, Math.max(0, (l.recv_ns - prev) / 1e6));
    prev = l.recv_ns;
    await new Promise((r) => setTimeout(r, gapMs));
    await new Promise((r) => socket.send(l.raw, Number(port), '127.0.0.1', r));
  }
  process.stdout.write(`sent ${lines.length}\n`);
}

const bye = () => socket.close(() => process.exit(0));
process.on('SIGTERM', bye);
setTimeout(bye, 30_000).unref();
main().then(
  () => setTimeout(() => {}, 30_000),
  (e) => {
    process.stderr.write(`${e.stack}\n`);
    process.exit(1);
  },
);
