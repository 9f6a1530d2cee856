import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export const KERNEL_LOCK = '/tmp/skafe-kernel.lock';

/**
 * Holds the machine-wide kernel audit lock (flock on /tmp/skafe-kernel.lock)
 * for the caller: a `flock` child keeps it until release() or until this
 * process dies (its stdin closes), so a crashed test never leaves it held.
 */
export async function takeKernelLock(timeoutSec = 600): Promise<() => Promise<void>> {
  const child: ChildProcess = spawn('flock', ['-w', String(timeoutSec), KERNEL_LOCK, 'sh', '-c', 'echo locked; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: string) => {
      out += d;
      if (out.includes('locked')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`could not take ${KERNEL_LOCK} (flock exit ${code})`)));
  });
  return async () => {
    if (child.exitCode !== null) return;
    child.stdin!.end();
    await once(child, 'exit');
  };
}

export interface KernelStatus {
  [k: string]: number;
}

/** `auditctl -s` as numbers. */
export function auditStatus(): KernelStatus {
  const s: KernelStatus = {};
  for (const line of execFileSync('auditctl', ['-s']).toString().split('\n')) {
    const m = /^(\w+) (\d+)/.exec(line);
    if (m) s[m[1]!] = Number(m[2]);
  }
  return s;
}

/** `auditctl -l` lines ([] for "No rules"). */
export function auditRules(): string[] {
  return execFileSync('auditctl', ['-l']).toString().split('\n').filter((l) => l.trim() !== '' && l.trim() !== 'No rules');
}
