/**
 * A tiny tmpfs for "the disk is full" tests (the spool directory). Mounting needs root, as
 * tests and CI run here. Where mount is impossible the test is skipped with the reason, except
 * under CI=true, where that is a failure: CI must run these tests.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Tmpfs {
  dir: string;
  unmount(): void;
}

/** Why a tmpfs cannot be mounted here, or undefined when it can (probed once). */
export const tmpfsUnavailable: string | undefined = (() => {
  const probe = mkdtempSync(join(tmpdir(), 'csm-tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', probe], { stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('umount', [probe]);
    return undefined;
  } catch (e) {
    const why = `cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): ${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim()}`;
    if (process.env['CI'] === 'true') throw new Error(`CI must run the full-disk tests: ${why}`);
    return why;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
})();

export function mountTmpfs(sizeKiB: number): Tmpfs {
  const dir = mkdtempSync(join(tmpdir(), 'csm-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir]);
  let mounted = true;
  return {
    dir,
    unmount() {
      if (mounted) execFileSync('umount', ['-l', dir]);
      mounted = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
