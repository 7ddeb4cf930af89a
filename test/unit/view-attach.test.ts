/**
 * The terminal's live view beside the web view (both on: a terminal and the default admin
 * listener): one model for both, fed once per call by the web view's tap, so the two views show
 * the same numbers and a call costs one model update, not two.
 */
import { createSocket } from 'node:dgram';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge.js';
import { resolveOtelEnv, type OtelSettings } from '../../src/config/otel-env.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { parseHostPort } from '../../src/net/address.js';
import { startView } from '../../src/ui/attach.js';
import type { LiveView } from '../../src/ui/live-view.js';

/** A terminal the view draws on: 120x40, its output discarded. */
function fakeTerminal(): NodeJS.WriteStream {
  const out = new PassThrough() as unknown as NodeJS.WriteStream & { columns: number; rows: number; isTTY: boolean };
  out.columns = 120;
  out.rows = 40;
  out.isTTY = true;
  (out as unknown as PassThrough).resume();
  return out;
}

const call = (t: number) => [
  { Version: 1, ClientId: 'attach-test', Type: 'ApiCallAttempt', Service: 'S3', Api: 'ListBuckets', Timestamp: t, AttemptLatency: 5, HttpStatusCode: 200, Fqdn: 's3.amazonaws.com', Region: 'us-east-1', XAmzRequestId: 'RID1' },
  { Version: 1, ClientId: 'attach-test', Type: 'ApiCall', Service: 'S3', Api: 'ListBuckets', Timestamp: t, AttemptCount: 1, Latency: 6, FinalHttpStatusCode: 200, MaxRetriesExceeded: 0, Region: 'us-east-1' },
];

let cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup = [];
});

async function bridgeWith(admin: string): Promise<{ bridge: Bridge; port: number; otel: OtelSettings }> {
  const config = configSchema.parse({ listen: ['127.0.0.1:0'], admin, processIdentity: 'off', otlpEndpoint: 'http://127.0.0.1:9' });
  const otel = resolveOtelEnv({}, config);
  const bridge = new Bridge(config, createLogger('error', () => {}), 'test', otel);
  const { listen } = await bridge.start();
  cleanup.push(() => bridge.stop(Date.now() + 1_000));
  return { bridge, port: parseHostPort(listen[0]!).port, otel };
}

async function sendCalls(port: number, n: number): Promise<void> {
  const sock = createSocket('udp4');
  for (let i = 0; i < n; i++) for (const d of call(Date.now() - 20)) await new Promise<void>((r) => sock.send(JSON.stringify(d), port, '127.0.0.1', () => r()));
  sock.close();
}

async function until(pred: () => boolean, ms = 5_000): Promise<void> {
  for (const end = Date.now() + ms; !pred(); ) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('the live view beside the web view', () => {
  it('reads the web view’s model: one model, each call counted once', async () => {
    const { bridge, port, otel } = await bridgeWith('127.0.0.1:0');
    const view: LiveView = startView(bridge, otel, { version: 'test', listen: [] }, { out: fakeTerminal() });
    cleanup.push(async () => view.close());
    expect(bridge.viewModel).toBeDefined();
    expect(view.model).toBe(bridge.viewModel);
    await sendCalls(port, 3);
    await until(() => view.model.calls >= 3);
    await new Promise((r) => setTimeout(r, 200));
    expect(view.model.calls).toBe(3);
    expect(view.model.rows.get('S3.ListBuckets')?.calls).toBe(3);
  });

  it('keeps its own model when there is no web view (--admin off)', async () => {
    const { bridge, port, otel } = await bridgeWith('off');
    expect(bridge.viewModel).toBeUndefined();
    const view = startView(bridge, otel, { version: 'test', listen: [] }, { out: fakeTerminal() });
    cleanup.push(async () => view.close());
    await sendCalls(port, 2);
    await until(() => view.model.calls >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(view.model.calls).toBe(2);
  });
});
