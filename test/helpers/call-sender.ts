/**
 * Sends real CSM calls: one captured aws-sdk JS v2 ApiCallAttempt + ApiCall pair
 * (S3.ListBuckets, two spans per call), shifted 100 ms apart and with their own request ids,
 * from one bound UDP socket (JS v2 itself uses a new port per datagram; one socket keeps a test's
 * calls in one correlation group, as botocore does).
 */
import { createSocket, type Socket } from 'node:dgram';
import { readCapture } from './captures.js';

const capture = readCapture('js_v2_sequential');
const ATTEMPT = JSON.parse(capture[0]!.raw) as Record<string, unknown>;
const CALL = JSON.parse(capture[1]!.raw) as Record<string, unknown>;

export interface CallSender {
  /** Sends `count` calls to the bridge on loopback `port`; request ids are `${prefix}-${i}`. */
  send(port: number, count: number): Promise<void>;
  close(): void;
}

export async function startCallSender(prefix: string): Promise<CallSender> {
  const udp: Socket = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  return {
    async send(port, count) {
      for (let i = 0; i < count; i++) {
        const shift = i * 100;
        const attempt = { ...ATTEMPT, XAmznRequestId: `${prefix}-${i}`, Timestamp: (ATTEMPT['Timestamp'] as number) + shift };
        const call = { ...CALL, Timestamp: (CALL['Timestamp'] as number) + shift };
        for (const d of [attempt, call]) await new Promise<void>((res, rej) => udp.send(Buffer.from(JSON.stringify(d)), port, '127.0.0.1', (e) => (e ? rej(e) : res())));
      }
    },
    close: () => udp.close(),
  };
}

/** Sends `count` calls to the bridge on loopback `port` from a sender of its own, then closes it. */
export async function sendCalls(prefix: string, port: number, count: number): Promise<void> {
  const sender = await startCallSender(prefix);
  try {
    await sender.send(port, count);
  } finally {
    sender.close();
  }
}
