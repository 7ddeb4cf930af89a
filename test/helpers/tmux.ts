import { spawnSync } from 'node:child_process';

/**
 * A real terminal for the end-to-end tests: a private tmux server (its own socket, so nothing
 * of the user's tmux is touched; `kill` ends it all) running one command in a pane of a given
 * size, read back as the screen a person sees.
 */
export class Tmux {
  constructor(
    private readonly bin: string,
    private readonly socket: string,
    private readonly session = 'view',
  ) {}

  run(...args: string[]) {
    return spawnSync(this.bin, ['-L', this.socket, ...args], { encoding: 'utf8' });
  }

  /** Starts `command` (a shell line) in a detached pane of `cols` x `rows`; throws when tmux refuses. */
  start(command: string, cols: number, rows: number): void {
    const r = this.run('new-session', '-d', '-s', this.session, '-x', String(cols), '-y', String(rows), command);
    if (r.status !== 0) throw new Error(`tmux new-session failed: ${r.stderr}`);
  }

  /** The visible screen; `joinWrapped`: a line the terminal wrapped comes back as one line. */
  screen(joinWrapped = false): string {
    return this.run('capture-pane', '-p', ...(joinWrapped ? ['-J'] : []), '-t', this.session).stdout;
  }

  keys(...keys: string[]): void {
    this.run('send-keys', '-t', this.session, ...keys);
  }

  resize(cols: number, rows: number): void {
    this.run('resize-window', '-t', this.session, '-x', String(cols), '-y', String(rows));
  }

  /** Polls the screen (bounded) until `pred` holds; returns the last screen either way. */
  async waitScreen(pred: (s: string) => boolean, timeoutMs = 20_000, everyMs = 200, joinWrapped = false): Promise<string> {
    const end = Date.now() + timeoutMs;
    let s = this.screen(joinWrapped);
    while (!pred(s) && Date.now() < end) {
      await new Promise((r) => setTimeout(r, everyMs));
      s = this.screen(joinWrapped);
    }
    return s;
  }

  kill(): void {
    this.run('kill-server');
  }
}

/** A word for a POSIX shell line, quoted. */
export const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
