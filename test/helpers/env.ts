import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** The repository root (tests run from dist/test/…). */
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const fixtures = (...p: string[]) => path.join(repoRoot, 'test', 'fixtures', ...p);
export const skafeBin = path.join(repoRoot, 'bin', 'skafe');

const inCI = process.env.CI === 'true';

interface Skippable {
  skip(reason: string): void;
  fail(reason: string): void;
  end(): void;
}

/**
 * Tests that need root, the kernel's audit netlink socket or a system tool
 * skip with a reason when it cannot run here, but under CI=true such a skip is
 * a failure: CI installs everything, so a skip there means a broken set-up.
 * Returns false when the test must not go on.
 */
export function need(t: Skippable, what: 'root' | 'kernel-audit' | { tool: string }): boolean {
  let reason: string | undefined;
  if (what === 'root' || what === 'kernel-audit') {
    if (process.getuid?.() !== 0) reason = 'needs root';
    else if (what === 'kernel-audit') {
      try {
        execFileSync('auditctl', ['-s'], { stdio: 'pipe' });
      } catch (e) {
        reason = `kernel audit not usable here (auditctl -s failed: ${(e as Error).message.split('\n')[0]})`;
      }
    }
  } else {
    try {
      execFileSync('sh', ['-c', `command -v ${what.tool}`], { stdio: 'pipe' });
    } catch {
      reason = `needs ${what.tool} (not installed)`;
    }
  }
  if (reason === undefined) return true;
  if (inCI) t.fail(`CI=true but cannot run: ${reason}`);
  else t.skip(reason);
  return false;
}
