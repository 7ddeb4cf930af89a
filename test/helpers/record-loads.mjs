// Preloaded into a bridge under test (NODE_OPTIONS=--import): records every module it loads into
// the file $RECORD_LOADS_TO, one URL or path a line. ES modules through a load hook (it runs on
// the loader's thread, hence a file), CommonJS ones (require, createRequire) from require.cache
// and Node's own (node:tls ...) from process.moduleLoadList, at exit. test/e2e/default-load.e2e.test.ts reads it.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.RECORD_LOADS_TO;
if (out) {
  const hook = `import { appendFileSync } from 'node:fs';
    export async function load(url, context, next) {
      appendFileSync(${JSON.stringify(out)}, url + '\\n');
      return next(url, context);
    }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  const require = createRequire(import.meta.url);
  const builtins = () => process.moduleLoadList.filter((m) => m.startsWith('NativeModule ')).map((m) => `node:${m.slice('NativeModule '.length)}`);
  process.on('exit', () => appendFileSync(out, [...Object.keys(require.cache), ...builtins()].join('\n') + '\n'));
}
