/**
 * The terminal's live view beside the web view (both on: a terminal and the default admin
 * listener): one model for both, fed once per call by the web view's tap, so the two views show
 * the same numbers and a call costs one model update, not two.
 */
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Bridge } from '../../src/bridge.js';
import { resolveOtelEnv, type OtelSettings } from '../../src/config/otel-env.js';
import { configSchema } from '../../src/config/schema.js';
import { createLogger } from '../../src/log.js';
import { parseHostPort } from '../../src/net/address.js';
import { startView } from '../../src/ui/attach.js';
import type { LiveView } from '../../src/ui/live-view.js';
import { sendCalls } from '../helpers/call-sender.js';

/** A terminal the view draws on: 120x40, its output discarded. */
function fakeTerminal(): NodeJS.WriteStream {
  const out = new PassThrough() as unknown as NodeJS.WriteStream & { columns: number; rows: number; isTTY: boolean };
  out.columns = 120;
  out.rows = 40;
  out.isTTY = true;
  (out as unknown as PassThrough).resume();
  return out;
}

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
    await sendCalls('view-attach', port, 3);
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
    await sendCalls('view-attach', port, 2);
    await until(() => view.model.calls >= 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(view.model.calls).toBe(2);
  });
});
