/**
 * `--policy-file PATH`: the observations behind each application's policy, kept across restarts
 * and deploys. The file holds the policies as last built (for people and scripts) and the
 * observations (what is loaded back). A file that exists but cannot be read or parsed is an
 * error the bridge stops on (exit 2), never a file it overwrites.
 *
 * The bridge often runs as root, and the file's directory may be shared (/tmp, /var/tmp): no
 * other user may make it write or read somewhere else. So, at start, every directory on the
 * way must be writable only by root or this user, unless it is sticky (then others cannot
 * rename or remove what the bridge made there); the file itself must be a regular file, not a
 * link, and no larger than a policy file can be. Writes go to a new temporary file beside it,
 * created exclusively under a random name (O_EXCL | O_NOFOLLOW, mode 0600: a planted file or
 * link fails the write instead of redirecting it), then renamed over the path, which replaces
 * whatever entry is there without following it.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, realpathSync, statSync } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import type { PolicyState, SubjectState } from './observer.js';

export class PolicyFileError extends Error {}

const count = z.number().int().min(0);
const stateSchema = z.object({
  version: z.literal(1),
  subjects: z.array(
    z.object({
      client: z.string(),
      process: z.string().optional(),
      calls: z.array(z.object({ service: z.string(), api: z.string(), calls: count, failed: count, scopes: z.array(z.string()) })),
      denials: z.array(
        z.object({
          service: z.string(),
          api: z.string(),
          action: z.string().optional(),
          resource: z.string().optional(),
          reason: z.string().optional(),
          explicitDeny: z.boolean(),
          calls: count,
        }),
      ),
    }),
  ),
});
const fileSchema = z.object({ observed: stateSchema }).passthrough();

/**
 * Larger than any file this bridge writes (the observations are bounded by MAX_POLICY_STATE_BYTES,
 * src/policy/observer.ts, and the policies built from them stay well under this): a larger one
 * is refused before anything is read (`--policy-file /dev/zero` would otherwise fill memory),
 * and a write that would exceed it fails instead of leaving a file the next start refuses.
 */
export const MAX_POLICY_FILE_BYTES = 128 * 1024 * 1024;

/** What the file says it is, first in it. */
const NOTE = 'policies are rebuilt from "observed" at every write; only "observed" is read back';

/**
 * The observations in `path`; undefined when there is no such file yet. Throws PolicyFileError
 * when it or its directory cannot be used (see the header): the bridge stops with exit 2.
 */
export function readPolicyFile(path: string): PolicyState | undefined {
  checkDirectories(path);
  let fd: number;
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) throw new PolicyFileError(`the policy file ${path} is a symbolic link: give the path of the file itself (the bridge replaces the file by a rename and never writes through a link)`);
    if (!st.isFile()) throw new PolicyFileError(`the policy file ${path} is not a regular file: --policy-file names a JSON file the bridge writes`);
    // O_NOFOLLOW | O_NONBLOCK: a link or pipe swapped in since the lstat fails or does not block.
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if (e instanceof PolicyFileError) throw e;
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PolicyFileError(`cannot read the policy file ${path}: ${(e as Error).message}`);
  }
  let text: string;
  try {
    text = readBounded(fd, path);
  } finally {
    closeSync(fd);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new PolicyFileError(`the policy file ${path} is not JSON (${(e as Error).message}); fix or remove it, it is not overwritten`);
  }
  const r = fileSchema.safeParse(doc);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new PolicyFileError(
      `the policy file ${path} is not one this bridge wrote (${issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid'}); fix or remove it, it is not overwritten`,
    );
  }
  return r.data.observed as PolicyState;
}

/** The whole file as text, refused (PolicyFileError) before it is buffered when it is not a regular file or over the bound. */
function readBounded(fd: number, path: string): string {
  const st = fstatSync(fd);
  const tooBig = (size: string) =>
    new PolicyFileError(`the policy file ${path} is ${size} bytes, over the ${MAX_POLICY_FILE_BYTES} a policy file of this bridge can be: not a file it wrote; fix or remove it, it is not overwritten`);
  if (!st.isFile()) throw new PolicyFileError(`the policy file ${path} is not a regular file: --policy-file names a JSON file the bridge writes`);
  if (st.size > MAX_POLICY_FILE_BYTES) throw tooBig(String(st.size));
  // One byte more than the bound: a file growing while read is caught too.
  const buf = Buffer.allocUnsafe(Math.min(st.size, MAX_POLICY_FILE_BYTES) + 1);
  let len = 0;
  try {
    for (let n; len < buf.length && (n = readSync(fd, buf, len, buf.length - len, null)) > 0; ) len += n;
  } catch (e) {
    throw new PolicyFileError(`cannot read the policy file ${path}: ${(e as Error).message}`);
  }
  if (len > MAX_POLICY_FILE_BYTES) throw tooBig(`over ${MAX_POLICY_FILE_BYTES}`);
  return buf.toString('utf8', 0, len);
}

/**
 * Refuses (PolicyFileError) a policy path in a directory another user could write: one that
 * does not exist, is owned by another user than root or this one, or is group- or
 * world-writable without the sticky bit. Its parents too: whoever can write a parent can
 * rename the directory away and put their own in its place.
 */
const STICKY = 0o1000;

function checkDirectories(path: string): void {
  const dir = dirname(resolve(path));
  let real: string;
  try {
    real = realpathSync(dir);
  } catch (e) {
    throw new PolicyFileError(`the directory of the policy file ${path} cannot be used (${(e as Error).message}): create it, writable only by the bridge's user`);
  }
  const me = process.geteuid?.();
  for (let d = real; ; d = dirname(d)) {
    const st = statSync(d);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
    if (st.uid !== 0 && st.uid !== me) {
      throw new PolicyFileError(
        `the policy file ${path} is in ${d}, owned by another user (uid ${st.uid}), who could replace the file or what it points to: put it in a directory owned by root or the bridge's user`,
      );
    }
    if ((st.mode & 0o022) !== 0 && (st.mode & STICKY) === 0) {
      throw new PolicyFileError(
        `the policy file ${path} is in ${d} (mode ${mode}), which other users can write and which is not sticky: they could replace the file or plant links beside it. Use a directory only the bridge's user can write (chmod go-w ${d}), or make it sticky (chmod +t ${d})`,
      );
    }
    if (dirname(d) === d) return;
  }
}

/**
 * The file's text, in parts of one subject each (a large state is written between datagrams,
 * not serialized in one go): exactly JSON.stringify({ generatedBy, note, policies, observed }, null, 2).
 * `policies` are each label's document as jsonAt(document, 2); each subject's state is read
 * when its part is due.
 */
export function* policyFileParts(
  policies: readonly (readonly [label: string, policyJson: string | Buffer])[],
  subjects: readonly { state(): SubjectState }[],
): Generator<string | Buffer> {
  yield `{\n  "generatedBy": "aws-csm-bridge",\n  "note": ${JSON.stringify(NOTE)},\n  "policies": `;
  if (policies.length === 0) yield '{}';
  else {
    for (let i = 0; i < policies.length; i++) {
      const [label, json] = policies[i]!;
      yield `${i === 0 ? '{' : ','}\n    ${JSON.stringify(label)}: `;
      yield json;
    }
    yield '\n  }';
  }
  yield ',\n  "observed": {\n    "version": 1,\n    "subjects": ';
  if (subjects.length === 0) yield '[]';
  else {
    for (let i = 0; i < subjects.length; i++) yield `${i === 0 ? '[' : ','}\n      ${jsonAt(subjects[i]!.state(), 3)}`;
    yield '\n    ]';
  }
  yield '\n  }\n}\n';
}

/** JSON.stringify(v, null, 2) as it reads `depth` levels deep (JSON text has no raw newline but these). */
export const jsonAt = (v: unknown, depth: number): string => JSON.stringify(v, null, 2).replaceAll('\n', `\n${'  '.repeat(depth)}`);

/**
 * Writes atomically and safely: a new temporary file beside `path` (exclusive, random name, no
 * link followed, 0600), synced, then renamed over `path`. On any failure the temporary file is
 * removed and the error thrown; `path` is then as it was. `tempName` is for tests only.
 */
export async function writePolicyFile(path: string, parts: Iterable<string | Buffer>, tempName: () => string = () => randomBytes(12).toString('hex')): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${tempName()}.tmp`);
  const fh = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    let bytes = 0;
    for (const part of parts) {
      bytes += Buffer.byteLength(part);
      if (bytes > MAX_POLICY_FILE_BYTES) throw new Error(`the policy file would be over ${MAX_POLICY_FILE_BYTES} bytes, more than a start reads back: not written`);
      await fh.writeFile(part);
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
}
