// The native/interpret addon (one .node file: event interpretation, line
// scanning, the rule tree's projection), loaded once per thread. Optional:
// without it (not built, or SKAFE_NATIVE_INTERPRET=0) every caller has a
// JavaScript path that gives the same results.
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
// dist/src → the checkout's native/; src when run from source
const CANDIDATES = [path.resolve(here, '../../native/interpret/build/Release/skafe_interpret.node'), path.resolve(here, '../native/interpret/build/Release/skafe_interpret.node')];

let addon: unknown;
let tried = false;

/** The addon's exports, or null when it is not built here or switched off. */
export function interpretAddon<T>(): T | null {
  if (!tried) {
    tried = true;
    addon = null;
    if (process.env.SKAFE_NATIVE_INTERPRET !== '0') {
      for (const file of CANDIDATES) {
        try {
          addon = require(file);
          break;
        } catch {
          // not built here: try the next place
        }
      }
    }
  }
  return addon as T | null;
}
