#!/usr/bin/env node
// Open web-view pages against a running bridge: N Server-Sent Events viewers of /web/events
// (what the page at GET / reads), each reading and discarding its updates, reconnecting when the
// bridge restarts. Run it beside `npm run bench` to measure what viewers cost the datagram path
// (the bench starts a bridge per rate: give it a fixed admin address after `--`):
//
//   node bench/web-viewers.mjs --admin 127.0.0.1:31999 --viewers 5 &
//   npm run bench -- --rates 10000,50000 --repeat 3 -- --admin 127.0.0.1:31999
//
// Alternate runs with 0, 1 and 5 viewers. Every 10 s it prints one JSON line: viewers connected,
// updates and bytes received in that time (the bridge sends one update a second per viewer).
// --slow: the viewers never read (the bridge must drop them: web.slowViewersDropped in /stats).
import { request } from 'node:http';
import { flag } from './common.mjs';

const admin = flag('--admin', '127.0.0.1:31001');
const viewers = Number(flag('--viewers', '1'));
const slow = process.argv.includes('--slow');
const RECONNECT_MS = 500;
const REPORT_MS = 10_000;

let connected = 0;
let updates = 0;
let bytes = 0;
let refused = 0;

function viewer() {
  const [host, port] = [admin.slice(0, admin.lastIndexOf(':')).replace(/^\[|\]$/g, ''), Number(admin.slice(admin.lastIndexOf(':') + 1))];
  const again = () => setTimeout(viewer, RECONNECT_MS);
  const req = request({ host, port, path: '/web/events', headers: { accept: 'text/event-stream' } }, (res) => {
    if (res.statusCode !== 200) {
      refused++;
      res.resume();
      res.on('end', again);
      return;
    }
    connected++;
    if (slow) res.pause();
    else
      res.on('data', (d) => {
        bytes += d.length;
        // One "event:" line per update.
        for (let i = d.indexOf('event: '); i >= 0; i = d.indexOf('event: ', i + 7)) updates++;
      });
    res.on('close', () => {
      connected--;
      again();
    });
  });
  req.on('error', again);
  req.end();
}

for (let i = 0; i < viewers; i++) viewer();
setInterval(() => {
  process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), admin, viewers: connected, updates, kib: Math.round(bytes / 1024), refused, slow })}\n`);
  updates = bytes = refused = 0;
}, REPORT_MS);
process.on('SIGINT', () => process.exit(0));
