import type { Config } from '../config/schema.js';

/**
 * The live view is shown when asked for (ui, the default) and stdout is a terminal. Apart from
 * attach.ts so that deciding costs nothing: the view's code (about 10 MB of heap with what it
 * pulls in, bench/module-cost.mjs) is loaded only when it is shown.
 */
export function wantsView(config: Config, out: NodeJS.WriteStream = process.stdout): boolean {
  return config.ui && out.isTTY === true;
}
