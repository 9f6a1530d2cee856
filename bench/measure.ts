import { spawn } from 'node:child_process';
import fs from 'node:fs';

export interface Measured {
  wallS: number;
  cpuS: number;
  peakRssMB: number;
}

/**
 * Run a command under GNU time(1) for wall time, CPU seconds (user+sys) and
 * peak RSS of the process tree's largest member: what the brief asks us to
 * compare between skafe and its peers in one run.
 */
export function measure(cmd: string, args: string[], opts: { stdinFile?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Measured & { stderr: string }> {
  return new Promise((resolve, reject) => {
    const stdin = opts.stdinFile ? fs.openSync(opts.stdinFile, 'r') : 'ignore';
    const child = spawn('/usr/bin/time', ['-f', '@@TIME %e %U %S %M', cmd, ...args], {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: [stdin, 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (typeof stdin === 'number') fs.closeSync(stdin);
      const m = /@@TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(err);
      if (!m || code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err.slice(-2000)}`));
      resolve({ wallS: Number(m[1]), cpuS: Number(m[2]) + Number(m[3]), peakRssMB: Number(m[4]) / 1024, stderr: err });
    });
  });
}

export function countLines(file: string): number {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 20);
  let n = 0;
  let r: number;
  while ((r = fs.readSync(fd, buf, 0, buf.length, null)) > 0) {
    for (let i = 0; i < r; i++) if (buf[i] === 10) n++;
  }
  fs.closeSync(fd);
  return n;
}

export const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
