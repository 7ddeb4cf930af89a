/**
 * The admin listener's request handling, in process over real loopback HTTP: a route that
 * throws or rejects answers 500, counted and logged, and the process goes on (before, any
 * throw in the handler was uncaught); how request targets and Host headers are read.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AdminServer, splitTarget } from '../../src/admin/server.js';
import { hostName } from '../../src/net/address.js';
import { createLogger } from '../../src/log.js';
import type { PolicyService } from '../../src/policy/policy-service.js';
import { newStats, type Stats } from '../../src/stats.js';

let servers: AdminServer[] = [];
afterEach(async () => {
  for (const s of servers) await s.close();
  servers = [];
});

async function serve(snapshot: () => Stats, policy?: Partial<PolicyService>): Promise<{ url: string; stats: Stats; lines: string[] }> {
  const stats = newStats(Date.now());
  const lines: string[] = [];
  const log = createLogger('warn', (l) => lines.push(l));
  const server = new AdminServer({ listen: '127.0.0.1:0', allowRemoteHttp: false }, snapshot, stats.admin, log, policy as PolicyService | undefined);
  await server.start();
  servers.push(server);
  return { url: `http://${server.address()}`, stats, lines };
}

describe('a route that fails', () => {
  it('throwing: 500 with a JSON error, counted in admin.errors and logged; the next request is answered', async () => {
    let fail = true;
    const ok = newStats(0);
    const { url, stats, lines } = await serve(() => {
      if (fail) throw new Error('snapshot broke');
      return ok;
    });
    const r = await fetch(`${url}/stats`);
    expect(r.status).toBe(500);
    expect(((await r.json()) as { error: string }).error).toContain('snapshot broke');
    expect(stats.admin.errors).toBe(1);
    expect(lines.join('')).toContain('an admin request failed (a bug): answered 500');
    fail = false;
    expect((await fetch(`${url}/stats`)).status).toBe(200);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('rejecting (the policy route): 500, counted', async () => {
    const { url, stats } = await serve(() => newStats(0), {
      allJson: () => Promise.reject(new Error('policy broke')),
      one: () => {
        throw new Error('sync throw in an async route');
      },
      labels: () => [],
    });
    const all = await fetch(`${url}/policy`);
    expect([all.status, ((await all.json()) as { error: string }).error]).toEqual([500, expect.stringContaining('policy broke')]);
    const one = await fetch(`${url}/policy?client=x`);
    expect([one.status, ((await one.json()) as { error: string }).error]).toEqual([500, expect.stringContaining('sync throw in an async route')]);
    expect(stats.admin.errors).toBe(2);
  });
});

describe('reading a request', () => {
  it('splitTarget never throws and keeps the path as sent', () => {
    expect(splitTarget('//')).toMatchObject({ path: '//' });
    expect(splitTarget('/policy?client=a%20b&x')).toMatchObject({ path: '/policy' });
    expect(splitTarget('/policy?client=a%20b').query.get('client')).toBe('a b');
    expect(splitTarget('/stats?%zz').path).toBe('/stats');
    expect(splitTarget('http://evil/healthz').path).toBe('http://evil/healthz');
  });

  it('hostName: the name of name, name:port, [v6], [v6]:port; undefined for anything else', () => {
    expect(['localhost', 'localhost:31001', '127.0.0.1:1', '[::1]', '[::1]:31001', 'evil.example'].map(hostName)).toEqual([
      'localhost',
      'localhost',
      '127.0.0.1',
      '::1',
      '::1',
      'evil.example',
    ]);
    for (const bad of ['', '::1', '[::1', 'a:b:c', 'localhost:', 'localhost:123456', '[evil.example]', 'a b@[::1]']) expect([bad, hostName(bad)]).toEqual([bad, undefined]);
  });
});
