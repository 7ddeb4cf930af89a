// The platform baseline: a minimal Node dgram receiver that only counts datagrams (same socket
// setup as the bridge: udp4 on loopback, same SO_RCVBUF). Prints {"port":N}; GET-free: it answers
// "count" lines on stdin with a JSON line on stdout.
import dgram from 'node:dgram';
import { createInterface } from 'node:readline';

const rcvbuf = Number(process.argv[2] ?? 8 * 1024 * 1024);
const socket = dgram.createSocket('udp4');
let received = 0;
let bytes = 0;
socket.on('message', (m) => {
  received++;
  bytes += m.length;
});
socket.bind(0, '127.0.0.1', () => {
  socket.setRecvBufferSize(rcvbuf);
  process.stdout.write(`${JSON.stringify({ port: socket.address().port, rcvbuf: socket.getRecvBufferSize() })}\n`);
});
createInterface({ input: process.stdin }).on('line', () => process.stdout.write(`${JSON.stringify({ received, bytes })}\n`));
process.stdin.on('end', () => process.exit(0));
