import { createSocket, type Socket } from 'node:dgram';
import { resolveOtelEnv } from '../../src/config/otel-env.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  addressBytes,
  commandLineFromProc,
  containerIdFromCgroup,
  decodeProcAddress,
  findSocketInode,
  parseProcNetUdp,
  socketInodeOfLink,
  startTimeFromStat,
} from '../../src/identity/proc-net.js';
import { OtelExporter } from '../../src/export/otel-exporter.js';
import { ProcessIdentityResolver, type ProcessIdentity, type ProcFs } from '../../src/identity/resolver.js';
import { createLogger } from '../../src/log.js';
import { newStats } from '../../src/stats.js';
import type { Translation } from '../../src/translate/types.js';
import { startOtlpSink } from '../helpers/otlp-sink.js';

// Real /proc/net/udp and /proc/net/udp6 text (x86-64, little-endian), rows trimmed to a few.
const UDP = `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 7433: 0100007F:D2BA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 51687 2 0000000018e34e2e 0        
 1021: 00000000:BC3F 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 61002 2 00000000a1b2c3d4 0        
 2290: 0100007F:C2F5 0100007F:7918 01 00000000:00000000 00:00000000 00000000  1000        0 61003 2 00000000a1b2c3d5 17       
 3001: 0100007F:9C40 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 0 2 00000000a1b2c3d6 0        
 garbage line that is not a socket row
`;
const UDP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  512: 00000000000000000000000001000000:7918 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 70001 2 0000000011111111 0
  600: 0000000000000000FFFF00000100007F:A000 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 70002 2 0000000022222222 0
  601: 00000000000000000000000000000000:B000 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 70003 2 0000000033333333 0
  602: 00000000000000000000000000000000:B000 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 70004 2 0000000044444444 0
`;

describe('/proc/net/udp parsing', () => {
  it('decodes little-endian hex addresses', () => {
    expect(decodeProcAddress('0100007F')).toBe('127.0.0.1');
    expect(decodeProcAddress('0A00A8C0')).toBe('192.168.0.10');
    expect(decodeProcAddress('00000000')).toBe('0.0.0.0');
    expect(decodeProcAddress('7F000001', false)).toBe('127.0.0.1');
    expect(decodeProcAddress('00000000000000000000000001000000')).toBe('0:0:0:0:0:0:0:1');
    expect(decodeProcAddress('0000000000000000FFFF00000100007F')).toBe('0:0:0:0:0:ffff:7f00:1');
    expect(decodeProcAddress('B80D0120000000000000000001000000')).toBe('2001:db8:0:0:0:0:0:1');
    expect(decodeProcAddress('XYZ')).toBeUndefined();
    expect(decodeProcAddress('0100')).toBeUndefined();
  });

  it('parses rows: addresses, ports, uid, inode, kernel drops; skips the header and malformed lines', () => {
    const rows = parseProcNetUdp(UDP);
    expect(rows).toHaveLength(4);
    expect(rows[0]).toEqual({ localAddress: '127.0.0.1', localPort: 0xd2ba, remoteAddress: '0.0.0.0', remotePort: 0, uid: 0, inode: 51687, drops: 0 });
    expect(rows[2]).toEqual({ localAddress: '127.0.0.1', localPort: 0xc2f5, remoteAddress: '127.0.0.1', remotePort: 31000, uid: 1000, inode: 61003, drops: 17 });
    const v6 = parseProcNetUdp(UDP6);
    expect(v6.map((r) => [r.localAddress, r.localPort, r.inode])).toEqual([
      ['0:0:0:0:0:0:0:1', 31000, 70001],
      ['0:0:0:0:0:ffff:7f00:1', 0xa000, 70002],
      ['0:0:0:0:0:0:0:0', 0xb000, 70003],
      ['0:0:0:0:0:0:0:0', 0xb000, 70004],
    ]);
    expect(parseProcNetUdp('')).toEqual([]);
  });

  it('normalises addresses to bytes', () => {
    expect(addressBytes('127.0.0.1')).toEqual([127, 0, 0, 1]);
    expect(addressBytes('::1')).toEqual([...Array<number>(15).fill(0), 1]);
    expect(addressBytes('[::1]')).toEqual(addressBytes('0:0:0:0:0:0:0:1'));
    expect(addressBytes('::ffff:127.0.0.1')).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 127, 0, 0, 1]);
    expect(addressBytes('::ffff:127.0.0.1')).toEqual(addressBytes('0:0:0:0:0:ffff:7f00:1'));
    expect(addressBytes('2001:db8::1')).toEqual(addressBytes('2001:db8:0:0:0:0:0:1'));
    expect(addressBytes('fe80::1%eth0')).toEqual(addressBytes('fe80::1'));
    for (const bad of ['', 'localhost', '256.0.0.1', '1::2::3', '1:2:3', '12345::', '1:2:3:4:5:6:7:8:9']) expect(addressBytes(bad), bad).toBeUndefined();
  });

  it('finds the sending socket: exact address, wildcard-bound, IPv4-mapped; never inode 0 or an ambiguous wildcard', () => {
    const rows = [...parseProcNetUdp(UDP), ...parseProcNetUdp(UDP6)];
    expect(findSocketInode(rows, '127.0.0.1', 0xd2ba)).toBe(51687); // bound to 127.0.0.1
    expect(findSocketInode(rows, '127.0.0.1', 0xbc3f)).toBe(61002); // auto-bound 0.0.0.0 (botocore)
    expect(findSocketInode(rows, '127.0.0.1', 0xc2f5)).toBe(61003); // connected (Go)
    expect(findSocketInode(rows, '::1', 31000)).toBe(70001);
    expect(findSocketInode(rows, '127.0.0.1', 0xa000)).toBe(70002); // udp6 socket on ::ffff:127.0.0.1
    expect(findSocketInode(rows, '::ffff:127.0.0.1', 0xa000)).toBe(70002);
    expect(findSocketInode(rows, '127.0.0.1', 0x9c40)).toBeUndefined(); // inode 0: closing
    expect(findSocketInode(rows, '127.0.0.1', 0xb000)).toBeUndefined(); // two wildcard sockets (SO_REUSEPORT)
    expect(findSocketInode(rows, '127.0.0.2', 0xd2ba)).toBeUndefined(); // another address on that port
    expect(findSocketInode(rows, '127.0.0.1', 1)).toBeUndefined();
    expect(findSocketInode(rows, 'not-an-ip', 0xd2ba)).toBeUndefined();
  });

  it('fd links, cgroups, stat and cmdline', () => {
    expect(socketInodeOfLink('socket:[61002]')).toBe(61002);
    expect(socketInodeOfLink('pipe:[61002]')).toBeUndefined();
    expect(socketInodeOfLink('/dev/null')).toBeUndefined();

    const id = 'a'.repeat(12) + '0123456789abcdef'.repeat(3) + 'b'.repeat(4);
    expect(id).toHaveLength(64);
    expect(containerIdFromCgroup(`12:memory:/docker/${id}\n11:cpu:/docker/${id}\n`)).toBe(id);
    expect(containerIdFromCgroup(`0::/system.slice/docker-${id}.scope\n`)).toBe(id);
    expect(containerIdFromCgroup(`0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice/cri-containerd-${id}.scope`)).toBe(id);
    expect(containerIdFromCgroup(`1:name=systemd:/kubepods/besteffort/pod5c3f/${id}\n`)).toBe(id);
    expect(containerIdFromCgroup('0::/\n')).toBeUndefined();
    expect(containerIdFromCgroup('4:memory:/process_api/4307c2336dfd444dbc6c4e945540325e\n0::/\n')).toBeUndefined(); // 32 hex: not a container id
    expect(containerIdFromCgroup(`0::/x/${id}f\n`)).toBeUndefined(); // 65 hex

    // comm may contain spaces and ")": field 22 is counted after the last ")".
    const stat = '4242 (my) proc) S 1 4242 4242 0 -1 4194560 1000 0 0 0 10 5 0 0 20 0 1 0 987654 12345678 300';
    expect(startTimeFromStat(stat)).toBe('987654');
    expect(startTimeFromStat('garbage')).toBeUndefined();
    expect(commandLineFromProc('python3\0app.py\0--flag\0')).toBe('python3 app.py --flag');
  });
});

const quiet = () => {
  const lines: Record<string, unknown>[] = [];
  return { lines, log: createLogger('debug', (l) => lines.push(JSON.parse(l) as Record<string, unknown>)) };
};

const tmpRoots: string[] = [];
afterAll(() => {
  for (const d of tmpRoots) rmSync(d, { recursive: true, force: true });
});

/** A directory laid out like /proc: net/udp, PID/fd/N symlinks (`socket:[inode]`), comm, exe, stat, cgroup, cmdline. */
function fakeProc(): { root: string; addProcess(pid: number, inodes: number[], opts?: { exe?: string; cgroup?: string; start?: string }): void } {
  const root = mkdtempSync(join(tmpdir(), 'fake-proc-'));
  tmpRoots.push(root);
  mkdirSync(join(root, 'net'));
  writeFileSync(join(root, 'net', 'udp'), UDP);
  writeFileSync(join(root, 'net', 'udp6'), UDP6);
  return {
    root,
    addProcess(pid, inodes, opts = {}) {
      const dir = join(root, String(pid));
      mkdirSync(join(dir, 'fd'), { recursive: true });
      symlinkSync('/dev/null', join(dir, 'fd', '0'));
      symlinkSync('pipe:[999]', join(dir, 'fd', '1'));
      inodes.forEach((n, i) => symlinkSync(`socket:[${n}]`, join(dir, 'fd', String(3 + i))));
      writeFileSync(join(dir, 'comm'), 'python3\n');
      if (opts.exe) symlinkSync(opts.exe, join(dir, 'exe'));
      writeFileSync(join(dir, 'stat'), `${pid} (python3) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${opts.start ?? '5000'} 1 1`);
      writeFileSync(join(dir, 'cgroup'), opts.cgroup ?? '0::/\n');
      writeFileSync(join(dir, 'cmdline'), 'python3\0app.py\0--password\0hunter2\0');
    },
  };
}

describe('ProcessIdentityResolver', () => {
  it('resolves a loopback source through a /proc tree, caches it, and only on loopback in auto mode', async () => {
    const p = fakeProc();
    const cid = 'c'.repeat(64);
    p.addProcess(300, [12345]);
    p.addProcess(4242, [61002, 51687], { exe: '/usr/bin/python3.11', cgroup: `0::/system.slice/docker-${cid}.scope\n` });
    const { log, lines } = quiet();
    const r = new ProcessIdentityResolver({ mode: 'auto', commandLine: false, procRoot: p.root }, log);

    const first = r.lookup('127.0.0.1', 0xbc3f);
    expect(first).toBeInstanceOf(Promise);
    const id = await first;
    expect(id?.attributes).toEqual({ 'process.pid': 4242, 'process.executable.name': 'python3.11', 'container.id': cid });
    expect(id?.alive()).toBe(true);
    // Cached: answered synchronously, the same object; the other socket of that process needs no new scan.
    expect(r.lookup('127.0.0.1', 0xbc3f)).toBe(id);
    expect((await r.lookup('127.0.0.1', 0xd2ba))?.pid).toBe(4242);
    expect(r.counters).toEqual({ resolved: 2, unresolved: 0, scans: 1 });
    // A socket that is gone (JS v2, Ruby close theirs right after sending): unresolved, cached as such.
    expect(await r.lookup('127.0.0.1', 4000)).toBeUndefined();
    expect(r.lookup('127.0.0.1', 4000)).toBeUndefined();
    expect(r.counters.unresolved).toBe(1);
    // auto: a non-loopback sender is not looked up at all.
    expect(r.lookup('10.1.2.3', 0xbc3f)).toBeUndefined();
    expect(r.counters.resolved + r.counters.unresolved).toBe(3);
    expect(lines.filter((l) => l['level'] === 'warn')).toEqual([]);

    // A reused pid (another start time) is not the same process any more.
    writeFileSync(join(p.root, '4242', 'stat'), '4242 (sh) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999 1 1');
    expect(id?.alive()).toBe(false);
    rmSync(join(p.root, '4242'), { recursive: true });
    expect(id?.alive()).toBe(false);
  });

  it('command line only when opted in; comm when exe is unreadable; keys differ by process', async () => {
    const p = fakeProc();
    p.addProcess(4242, [61002]);
    p.addProcess(4243, [61003]);
    const r = new ProcessIdentityResolver({ mode: 'on', commandLine: true, procRoot: p.root }, quiet().log);
    const a = await r.lookup('127.0.0.1', 0xbc3f);
    const b = await r.lookup('127.0.0.1', 0xc2f5);
    expect(a?.attributes).toEqual({ 'process.pid': 4242, 'process.executable.name': 'python3', 'process.command_line': 'python3 app.py --password hunter2' });
    expect(b?.pid).toBe(4243);
    expect(a?.key).not.toBe(b?.key);
    const off = new ProcessIdentityResolver({ mode: 'on', commandLine: false, procRoot: p.root }, quiet().log);
    expect((await off.lookup('127.0.0.1', 0xbc3f))?.attributes['process.command_line']).toBeUndefined();
  });

  it('turns itself off with one warning when /proc/net/udp cannot be read', async () => {
    const root = mkdtempSync(join(tmpdir(), 'no-proc-'));
    tmpRoots.push(root);
    const { log, lines } = quiet();
    const r = new ProcessIdentityResolver({ mode: 'auto', commandLine: false, procRoot: root }, log);
    expect(await r.lookup('127.0.0.1', 1)).toBeUndefined();
    expect(await r.lookup('127.0.0.1', 2)).toBeUndefined(); // queued before it knew
    expect(r.lookup('127.0.0.1', 3)).toBeUndefined(); // off now: not even queued
    expect(r.applies('127.0.0.1')).toBe(false);
    expect(lines.filter((l) => l['level'] === 'warn').map((l) => l['msg'])).toEqual([expect.stringMatching(/process identity is off: cannot read \/proc\/net\/udp/)]);
  });

  it('warns once when processes of other users cannot be inspected, and keeps resolving the rest', async () => {
    const p = fakeProc();
    p.addProcess(100, [61002]);
    p.addProcess(200, []);
    // Root reads any fd directory, so permission errors are injected: pid 200's fd dir is "not permitted".
    const real: ProcFs = {
      readFile: (f) => readFile(f, 'utf8'),
      readdir: (d) => readdir(d),
      readlink: (l) => readlink(l),
      readFileSync: (f) => readFileSync(f, 'utf8'),
    };
    const fs: ProcFs = {
      ...real,
      readdir: (d) => (d.endsWith('/200/fd') ? Promise.reject(Object.assign(new Error('EACCES'), { code: 'EACCES' })) : real.readdir(d)),
    };
    const { log, lines } = quiet();
    const r = new ProcessIdentityResolver({ mode: 'auto', commandLine: false, procRoot: p.root, minScanIntervalMs: 0, fs }, log);
    expect(await r.lookup('127.0.0.1', 0xc2f5)).toBeUndefined(); // inode 61003: nobody readable holds it
    expect(await r.lookup('127.0.0.1', 0xd2ba)).toBeUndefined(); // 51687 neither: no second warning
    expect((await r.lookup('127.0.0.1', 0xbc3f))?.pid).toBe(100);
    const warns = lines.filter((l) => l['level'] === 'warn');
    expect(warns).toHaveLength(1);
    expect(warns[0]?.['msg']).toMatch(/other users/);
    expect(warns[0]?.['unreadableProcesses']).toBe(1);
  });

  it('keeps a bounded cache (LRU) and rate-limits scans', async () => {
    const p = fakeProc();
    p.addProcess(4242, [61002]);
    const r = new ProcessIdentityResolver({ mode: 'auto', commandLine: false, procRoot: p.root, maxEntries: 3, minScanIntervalMs: 60_000 }, quiet().log);
    for (let port = 1; port <= 10; port++) await r.lookup('127.0.0.1', port);
    expect((r as unknown as { sources: Map<string, unknown> }).sources.size).toBe(3);
    // No inode was found for those ports, so no /proc/*/fd scan was needed.
    expect(r.counters.scans).toBe(0);
    expect((await r.lookup('127.0.0.1', 0xbc3f))?.pid).toBe(4242);
    expect(r.counters.scans).toBe(1);
    // An unknown inode within minScanIntervalMs waits for the next allowed scan: the lookup gives up
    // after maxWaitMs (here the test's short bound) and the call is exported without identity.
    const fast = new ProcessIdentityResolver(
      { mode: 'auto', commandLine: false, procRoot: p.root, minScanIntervalMs: 60_000, maxWaitMs: 50 },
      quiet().log,
    );
    expect((await fast.lookup('127.0.0.1', 0xbc3f))?.pid).toBe(4242);
    expect(await fast.lookup('127.0.0.1', 0xd2ba)).toBeUndefined(); // inode 51687: nobody holds it; scan deferred
    expect(fast.counters.scans).toBe(1);
    fast.close();
  });
});

describe('ProcessIdentityResolver on the real /proc', () => {
  const sockets: Socket[] = [];
  afterAll(() => {
    for (const s of sockets) s.close();
  });
  const open = async (type: 'udp4' | 'udp6', host: string) => {
    const s = createSocket(type);
    sockets.push(s);
    await new Promise<void>((r) => s.bind(0, host, r));
    return s;
  };

  it.skipIf(process.platform !== 'linux')('finds this test process as the sender of a loopback datagram (IPv4 and IPv6)', async () => {
    const r = new ProcessIdentityResolver({ mode: 'auto', commandLine: true, procRoot: '/proc' }, quiet().log);
    for (const [type, host] of [
      ['udp4', '127.0.0.1'],
      ['udp6', '::1'],
    ] as const) {
      const receiver = await open(type, host);
      const sender = createSocket(type); // unbound: sendto auto-binds it to the wildcard address, as botocore's does
      sockets.push(sender);
      const from = await new Promise<{ address: string; port: number }>((resolve) => {
        receiver.once('message', (_m, rinfo) => resolve(rinfo));
        sender.send('{}', receiver.address().port, host);
      });
      const id = await r.lookup(from.address, from.port);
      expect(id?.pid, type).toBe(process.pid);
      expect(id?.attributes['process.executable.name']).toBe('node');
      expect(String(id?.attributes['process.command_line'])).toContain('node');
      expect(id?.alive()).toBe(true);
    }
  });
});

describe('OtelExporter: one provider per (ClientId, process)', () => {
  const translation = (clientId: string, name: string): Translation => ({
    clientId,
    span: { name, kind: 'client', startMs: Date.now() - 5, endMs: Date.now(), attributes: {}, status: { code: 'unset' }, events: [], children: [] },
    metrics: [],
  });
  const fakeIdentity = (pid: number, state: { alive: boolean }): ProcessIdentity => ({
    key: `pid-${pid}`,
    pid,
    attributes: { 'process.pid': pid, 'process.executable.name': 'aws' },
    alive: () => state.alive,
  });

  it('keys providers by process, caps them at maxClients, and forgets clients of exited processes to make room', async () => {
    const sink = await startOtlpSink();
    const stats = newStats(Date.now());
    const exporter = new OtelExporter(
      {
        otel: resolveOtelEnv({}, { otlpEndpoint: sink.url, otlpProtocol: 'http/protobuf' }),
        defaultServiceName: 'unknown_service:aws-csm',
        maxClients: 3,
        exportDelayMs: 60_000,
        exportBatchSize: 100,
        metricsIntervalMs: 60_000,
        version: 'test',
        sampleKeep: DEFAULT_CONFIG.sampleKeep,
        maxMetricSeries: DEFAULT_CONFIG.maxMetricSeries,
        spoolMaxBytes: 1 << 20,
      },
      stats,
      quiet().log,
    );
    try {
      const first = { alive: true };
      const withMetric = (t: Translation): Translation => ({ ...t, metrics: [{ instrument: 'csm.call.attempts', value: 1, attributes: {} }] });
      exporter.write(withMetric(translation('cli', 'S3.ListBuckets')), fakeIdentity(101, first));
      // The ClientId's own client (its metrics, and calls whose sender is unknown) + the process's:
      // one application.
      expect(stats.clients).toEqual({ active: 1, overflowed: 0, evicted: 0 });
      exporter.write(withMetric(translation('cli', 'S3.ListBuckets')), fakeIdentity(101, first)); // same process: same provider
      exporter.write(withMetric(translation('cli', 'STS.GetCallerIdentity')), fakeIdentity(102, { alive: true }));
      expect(stats.clients).toEqual({ active: 1, overflowed: 0, evicted: 0 }); // 3 clients, still one application
      // At the cap, every process alive: the next one overflows.
      exporter.write(translation('cli', 'S3.HeadObject'), fakeIdentity(103, { alive: true }));
      expect(stats.clients).toEqual({ active: 2, overflowed: 1, evicted: 0 }); // + the overflow provider
      // Process 101 exits (the next `aws` command is a new process): its client is forgotten to make room.
      first.alive = false;
      await new Promise((r) => setTimeout(r, 1_100)); // eviction is checked at most once a second
      exporter.write(translation('cli', 'DynamoDB.ListTables'), fakeIdentity(104, { alive: true }));
      expect(stats.clients).toEqual({ active: 2, overflowed: 1, evicted: 1 });
      await exporter.shutdown();
      const byPid = (pid: number | undefined) => sink.spans.filter((s) => s.resource['process.pid'] === pid).map((s) => s.name);
      // Spans written before the eviction keep the exited process's resource.
      expect(byPid(101)).toEqual(['S3.ListBuckets', 'S3.ListBuckets']);
      expect(byPid(102)).toEqual(['STS.GetCallerIdentity']);
      expect(byPid(104)).toEqual(['DynamoDB.ListTables']);
      expect(byPid(undefined)).toEqual(['S3.HeadObject']);
      expect(sink.spans.find((s) => s.name === 'S3.HeadObject')?.resource['service.name']).toBe('aws-csm:other');
      for (const s of sink.spans.filter((x) => x.resource['process.pid'] !== undefined)) expect(s.resource['service.name']).toBe('cli');
      // Metrics stay per ClientId: one series for all three calls, no process on the resource.
      const attempts = sink.metricPoints.filter((m) => m.name === 'csm.call.attempts');
      expect(attempts.map((m) => [m.resource['service.name'], m.resource['process.pid'], m.count])).toEqual([['cli', undefined, 3]]);
    } finally {
      await exporter.shutdown().catch(() => {});
      await sink.close();
    }
  });
});
