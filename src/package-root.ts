/**
 * The package's root directory (where package.json, build/ and web/ are), as a file URL ending in
 * '/'. Files the bridge reads beside its code are found from here, not from each module's own
 * place: this module sits one level below the root in src/ (tests), in dist/ (tsc's output) and
 * in the bundle (dist/cli.js and its chunks, scripts/bundle.mjs), so one relative step holds in
 * all three.
 */
export const PACKAGE_ROOT = new URL('../', import.meta.url);
