/** `/stats` of a running bridge, typed as the bridge declares it (src/stats.ts). */
import type { Stats } from '../../src/stats.js';
import type { BridgeProcess } from './bridge-process.js';

export type { Stats };

/** GET /stats. One retry: a kept-alive admin connection may be closed by the server just as it is reused. */
export async function getStats(b: BridgeProcess): Promise<Stats> {
  for (let i = 0; ; i++) {
    try {
      return (await (await fetch(`${b.adminUrl}/stats`)).json()) as Stats;
    } catch (e) {
      if (i >= 2 || b.child.exitCode !== null) throw new Error(`/stats failed (bridge exit code ${b.child.exitCode}): ${(e as Error).message}\n${b.stderr().slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** Polls /stats every 50 ms until `cond` holds; after `timeoutMs` throws, naming `what`, with the last counters. */
export async function waitStats(b: BridgeProcess, cond: (s: Stats) => boolean, what: string, timeoutMs = 20_000): Promise<Stats> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await getStats(b);
    if (cond(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stats: ${JSON.stringify({ datagrams: s.datagrams, correlation: s.correlation, spans: s.spans, spool: s.spool })}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
