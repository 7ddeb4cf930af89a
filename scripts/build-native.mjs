#!/usr/bin/env node
/**
 * npm's install step: builds the recvmmsg receiver (native/udp_batch.c, binding.gyp) with
 * node-gyp, quietly. node-gyp prints some 45 lines of progress even when all goes well, none of
 * which a user needs, so its output is kept in build/node-gyp.log instead of the terminal: on
 * success nothing is printed; on failure one line with the reason. A failure never fails the
 * install: without the addon the bridge receives with node:dgram (src/receive/batch-socket.ts
 * says why at start).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';

const LOG = 'build/node-gyp.log';
/** What a failed build may print (a compiler's errors): enough for the log, bounded. */
const MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

// npm hands its lifecycle scripts the node-gyp it bundles; outside npm, the one on PATH.
const gyp = process.env.npm_config_node_gyp;
const r = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild'], { encoding: 'utf8', maxBuffer: MAX_OUTPUT_BYTES })
  : spawnSync('node-gyp', ['rebuild'], { encoding: 'utf8', maxBuffer: MAX_OUTPUT_BYTES });
const output = `${r.stdout ?? ''}${r.stderr ?? ''}`;
let logged = false;
try {
  mkdirSync('build', { recursive: true });
  writeFileSync(LOG, output);
  logged = true;
} catch {
  /* a read-only checkout: the reason below is all there is */
}
if (r.status !== 0) {
  const reason = r.error ? `node-gyp could not run: ${r.error.message}` : reasonOf(output);
  process.stderr.write(
    `aws-csm-bridge: the recvmmsg receiver was not built (${reason}; it needs g++, make and python3${logged ? `, details in ${LOG}` : ''}); the bridge will receive with node:dgram\n`,
  );
}

/** The first line that says what went wrong: a compiler's or make's error, else node-gyp's own. */
function reasonOf(text) {
  const lines = text.split('\n').map((l) => l.trim());
  const tool = lines.find((l) => !l.startsWith('gyp ') && /\berror\b|not found|No such file/i.test(l));
  if (tool) return tool;
  const gypError = lines.map((l) => /^gyp ERR! stack Error: (.+)$/.exec(l)?.[1]).find(Boolean);
  return gypError ?? (lines.filter(Boolean).pop() || `node-gyp exited with ${r.status}`);
}
