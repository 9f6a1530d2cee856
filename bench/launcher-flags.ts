import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// The V8 flags skafe's launcher starts node with: bin/skafe's shebang, the one
// place they are written. A bench that starts skafe with `node bin/skafe`, or
// measures stages inside its own process, passes them too, so its figures are
// of the process a server or an agent runs (V8 reads them only at start-up).

const here = path.dirname(fileURLToPath(import.meta.url));
const launcher = path.join(here, '../../bin/skafe');

export function launcherFlags(): string[] {
  const first = fs.readFileSync(launcher, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node((?: --[\w-]+(?:=\S+)?)*)\s*$/.exec(first);
  if (!m) throw new Error(`${launcher}: line 1 is not "#!/usr/bin/env -S node [--flag…]": ${first}`);
  return m[1]!.trim().split(/\s+/).filter(Boolean);
}

/** Whether this process runs with the launcher's flags (a bench run as `node dist/bench/X.js` does not). */
export function runsWithLauncherFlags(): boolean {
  const own = new Set(process.execArgv);
  return launcherFlags().every((f) => own.has(f));
}
