/**
 * The live view: a `top`-like screen on the terminal's alternate buffer,
 * redrawn about once a second, restored on exit. While it is up, log lines
 * go to a small area inside the view (see `log`) instead of the terminal.
 */
import type { Correlated } from '../correlate/types.js';
import type { Stats } from '../stats.js';
import type { Translation } from '../translate/types.js';
import { DEFAULT_LIMITS, ViewModel, type ViewLimits } from './model.js';
import { clean, render, withFooter, type Header } from './render.js';

const ENTER = '\x1b[?1049h\x1b[?25l\x1b[H\x1b[2J';
const LEAVE = '\x1b[?25h\x1b[?1049l';
const REDRAW_MS = 1_000;
const RATE_SAMPLES = 11;

export interface LiveViewOptions {
  version: string;
  listen: string[];
  admin?: string;
  target: string;
  stats: () => Stats;
  out: NodeJS.WriteStream;
  /** When a TTY: read keys (q, Ctrl-C) in raw mode. */
  input?: NodeJS.ReadStream;
  /** Called on q / Ctrl-C (raw mode swallows the terminal's own SIGINT). */
  onQuit: () => void;
  limits?: ViewLimits;
  /** A model fed elsewhere (the web view's, which holds all the terminal shows): read, not fed, here. */
  model?: ViewModel;
  /** Extra header lines, re-read every frame. */
  extra?: () => string[];
  /** The IAM policies (key p shows the selected application's, n selects the next one). */
  policy?: PolicyPane;
}

/** What the live view needs of the policy service. */
export interface PolicyPane {
  labels(): string[];
  /** The policy document of one application, as lines. */
  lines(label: string): Promise<string[]>;
}

export class LiveView {
  readonly model: ViewModel;
  private timer: NodeJS.Timeout | undefined;
  private active = false;
  private samples: { at: number; datagrams: number; spans: number }[] = [];
  private readonly onResize = () => this.draw();
  private readonly onKey = (d: Buffer) => {
    const s = d.toString('latin1');
    if (s.includes('q') || s.includes('Q') || s.includes('\x03')) this.opts.onQuit();
    this.policyKey(s);
  };
  /** Policy pane: shown or not, which application, its last rendered lines. */
  private policyShown = false;
  private policyIndex = 0;
  private policyLines: string[] = [];
  private policyLoading = false;
  private readonly restoreOnExit = () => this.close();

  constructor(private readonly opts: LiveViewOptions) {
    this.model = opts.model ?? new ViewModel(opts.limits ?? DEFAULT_LIMITS);
  }

  get isActive(): boolean {
    return this.active;
  }

  start(): void {
    if (this.active) return;
    this.active = true;
    this.opts.out.write(ENTER);
    this.opts.out.on('resize', this.onResize);
    process.on('exit', this.restoreOnExit);
    const input = this.opts.input;
    if (input?.isTTY) {
      input.setRawMode(true);
      input.on('data', this.onKey);
      input.resume();
    }
    this.draw();
    this.timer = setInterval(() => this.draw(), REDRAW_MS);
  }

  /** Tap: one translated call (not tapped when the model is fed elsewhere). */
  onCall(c: Correlated, t: Translation): void {
    this.model.add(c, t, Date.now());
  }

  /** A log line (JSON) written while the view is up: kept in the view's log area. */
  log(jsonLine: string): void {
    let level = 'info';
    let text = jsonLine.trim();
    try {
      const rec = JSON.parse(text) as Record<string, unknown>;
      level = String(rec['level'] ?? 'info');
      const { time: _t, level: _l, msg, ...rest } = rec;
      const fields = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : '';
      text = `${String(msg)}${fields}`;
    } catch {
      /* not JSON: shown as is (cleaned by render) */
    }
    this.model.log(Date.now(), level, text);
  }

  draw(): void {
    if (!this.active) return;
    let lines: string[];
    try {
      lines = this.frame();
    } catch (e) {
      // Drawn on a timer: a frame that throws (a bug) must not end the bridge. The view closes,
      // so the log goes back to stderr, and says why.
      this.close();
      this.opts.out.write(`aws-csm-bridge: the live view failed and is closed (the bridge goes on): ${(e as Error)?.message ?? String(e)}\n`);
      return;
    }
    // Home, each line cleared to its end, then the rest of the screen cleared: no flicker, no leftovers.
    this.opts.out.write(`\x1b[H${lines.map((l) => `${l}\x1b[K`).join('\r\n')}\x1b[J`);
  }

  /** p: show/hide the policy of the selected application; n: the next application. */
  policyKey(s: string): void {
    if (!this.opts.policy) return;
    if (s.includes('p') || s.includes('P')) this.policyShown = !this.policyShown;
    else if (s.includes('n') || s.includes('N')) this.policyIndex++;
    else return;
    this.draw();
  }

  /** The policy pane's lines (refreshed in the background; the previous ones are shown meanwhile). */
  private policyFrame(width: number, height: number): string[] {
    const pane = this.opts.policy!;
    const labels = pane.labels();
    const label = labels.length ? labels[this.policyIndex % labels.length]! : undefined;
    if (label !== undefined && !this.policyLoading) {
      this.policyLoading = true;
      pane.lines(label).then(
        (lines) => {
          this.policyLines = lines;
          this.policyLoading = false;
        },
        (e: Error) => {
          this.policyLines = [`(could not build the policy: ${e.message})`];
          this.policyLoading = false;
        },
      );
    }
    const head = [
      `aws-csm-bridge ${this.opts.version} · IAM policy`,
      label === undefined
        ? 'no application observed yet'
        : `application ${clean(label)} (${(this.policyIndex % labels.length) + 1} of ${labels.length})   also: GET /policy?client=ID on the admin listener`,
      '',
    ];
    const body = [...head, ...(label === undefined ? [] : this.policyLines.map(clean))].map((l) => (l.length > width ? l.slice(0, width) : l));
    return withFooter(body, 'p back to calls   n next application   q quit', width, height);
  }

  private frame(): string[] {
    if (this.policyShown && this.opts.policy) return this.policyFrame(this.opts.out.columns || 120, this.opts.out.rows || 40);
    const now = Date.now();
    const s = this.opts.stats();
    this.samples.push({ at: now, datagrams: s.datagrams.received, spans: s.spans.created });
    if (this.samples.length > RATE_SAMPLES) this.samples.shift();
    const first = this.samples[0]!;
    const dt = (now - first.at) / 1000;
    const header: Header = {
      version: this.opts.version,
      listen: this.opts.listen,
      ...(this.opts.admin ? { admin: this.opts.admin } : {}),
      target: this.opts.target,
      extra: this.opts.extra?.() ?? [],
      datagramsPerSec: dt > 0 ? (s.datagrams.received - first.datagrams) / dt : 0,
      spansPerSec: dt > 0 ? (s.spans.created - first.spans) / dt : 0,
      ...(this.opts.policy ? { policyKey: true } : {}),
    };
    const width = this.opts.out.columns || 120;
    const height = this.opts.out.rows || 40;
    return render(this.model, s, header, width, height, now);
  }

  /** Restores the terminal (and, with keepLastFrame, prints the last frame on it). Idempotent; also runs on process exit. */
  close(keepLastFrame = false): void {
    if (!this.active) return;
    // The last frame without its keys (the last line) and the blank lines above them.
    const last = keepLastFrame ? this.frame().slice(0, -1) : undefined;
    while (last?.length && last[last.length - 1] === '') last.pop();
    this.active = false;
    if (this.timer) clearInterval(this.timer);
    this.opts.out.off('resize', this.onResize);
    process.off('exit', this.restoreOnExit);
    const input = this.opts.input;
    if (input?.isTTY) {
      input.off('data', this.onKey);
      input.setRawMode(false);
      input.pause();
    }
    this.opts.out.write(LEAVE);
    if (last) this.opts.out.write(`${last.join('\n')}\n`);
  }
}
