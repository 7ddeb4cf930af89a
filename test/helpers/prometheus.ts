/**
 * A real Prometheus server (Debian's `prometheus` package, installed by .ci/run) for end-to-end
 * tests: started on a loopback port with a generated config scraping the given targets every
 * second, temporary storage, and stopped (and its storage removed) by `stop()`. Queries go
 * through its HTTP API, as Grafana's would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findTool, freePort } from './tools.js';

/** Path of the prometheus binary, or undefined (then the test fails under CI, skips elsewhere). */
export const PROMETHEUS = findTool('prometheus');
export const PROMTOOL = findTool('promtool');

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface PrometheusServer {
  url: string;
  /** Instant query; throws when Prometheus answers an error (a bad query). */
  query(promql: string): Promise<PromSample[]>;
  /** Polls `promql` until `accept` holds on its result (bounded). */
  waitFor(promql: string, accept: (r: PromSample[]) => boolean, timeoutMs?: number): Promise<PromSample[]>;
  /** The scrape targets' health as Prometheus sees them. */
  targets(): Promise<{ health: string; scrapeUrl: string; lastError: string }[]>;
  logs(): string;
  stop(): Promise<void>;
}

export async function startPrometheus(targets: string[]): Promise<PrometheusServer> {
  if (!PROMETHEUS) throw new Error('prometheus is not installed (apt-get install prometheus; .ci/run does)');
  const dir = mkdtempSync(join(tmpdir(), 'csm-prom-'));
  const port = await freePort();
  const config = join(dir, 'prometheus.yml');
  writeFileSync(
    config,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: aws-csm-bridge',
      '    static_configs:',
      `      - targets: [${targets.map((t) => JSON.stringify(t)).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    PROMETHEUS,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--storage.tsdb.retention.time=1h',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // Ready within 30 s, or give up with what it said.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      /* not listening yet */
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const query = async (promql: string): Promise<PromSample[]> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(promql)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: PromSample[] } };
    if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error}`);
    if (body.data!.resultType !== 'vector') throw new Error(`PromQL ${promql}: expected a vector, got ${body.data!.resultType}`);
    return body.data!.result;
  };
  return {
    url,
    query,
    async waitFor(promql, accept, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      let last: PromSample[] = [];
      for (;;) {
        last = await query(promql);
        if (accept(last)) return last;
        if (Date.now() > end) throw new Error(`PromQL ${promql}: not as expected within ${timeoutMs} ms; last result ${JSON.stringify(last)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    },
    async targets() {
      const body = (await (await fetch(`${url}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string; scrapeUrl: string; lastError: string }[] } };
      return body.data.activeTargets;
    },
    logs: () => out,
    stop,
  };
}
