/**
 * `--policy-file PATH`: the observations behind each application's policy, kept across restarts
 * and deploys. The file holds the policies as last built (for people and scripts) and the
 * observations (what is loaded back). Written atomically (a temporary file renamed over it);
 * a file that exists but cannot be read or parsed is an error the bridge stops on (exit 2),
 * never a file it overwrites.
 */
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { ConfigError } from '../config/error.js';
import type { PolicyDocument } from './document.js';
import type { PolicyState } from './observer.js';

/** A configuration refusal (exit 2): the file --policy-file names is there but unusable. */
export class PolicyFileError extends ConfigError {}

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

/** The observations in `path`; undefined when there is no such file yet. Throws PolicyFileError otherwise. */
export function readPolicyFile(path: string): PolicyState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PolicyFileError(`cannot read the policy file ${path}: ${(e as Error).message}`);
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

/** Writes atomically: a temporary file beside it, then a rename. */
export async function writePolicyFile(path: string, state: PolicyState, policies: Record<string, PolicyDocument>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const body = { generatedBy: 'aws-csm-bridge', note: 'policies are rebuilt from "observed" at every write; only "observed" is read back', policies, observed: state };
  await writeFile(tmp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o600 });
  await rename(tmp, path);
}
