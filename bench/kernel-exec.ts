// Bench case: N /bin/true execs per second for D seconds under one execve
// rule, and the CPU our agent (`netlink → coalesce → jsonl`) spends on them,
// against auditd (RAW log) and auditd + laurel (as auditd's plugin), each on a
// private configuration. Also the kernel's `lost` delta for each run.
//   node dist/bench/kernel-exec.js [--rates 1000,5000] [--seconds 30]
// Needs root, the kernel audit lock (/tmp/skafe-kernel.lock), auditd, laurel, gcc.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { auditStatus, takeKernelLock } from '../test/kernel/kernel-lock.js';
import { PrivateAuditd } from '../test/kernel/private-auditd.js';
import { launcherFlags } from './launcher-flags.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RULE = '-a always,exit -F arch=b64 -S execve -k bench';
const CLK_TCK = 100;

export interface KernelExecResult {
  system: 'skafe' | 'auditd' | 'auditd+laurel';
  targetRate: number;
  achievedRate: number;
  seconds: number;
  cpuPercent: number;
  kernelLost: number;
  outputBytes: number;
}

// A paced exec generator in C: Node's spawn costs more CPU than the exec itself.
const GENERATOR = `
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
  double rate = atof(argv[1]), secs = atof(argv[2]);
  char *args[] = { "/bin/true", "skafe-bench", NULL };
  double start = now(); long done = 0;
  while (now() - start < secs) {
    long due = (long)((now() - start) * rate);
    while (done < due) { pid_t p; if (posix_spawn(&p, "/bin/true", NULL, NULL, args, environ) == 0) done++; else break; }
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    struct timespec d = { 0, 500000 }; nanosleep(&d, NULL);
  }
  while (wait(NULL) > 0) {}
  printf("%ld %.3f\\n", done, now() - start);
  return 0;
}`;

function cpuTicks(pids: number[]): number {
  let total = 0;
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      total += Number(f[11]) + Number(f[12]); // utime, stime
    } catch { /* gone */ }
  }
  return total;
}

function childrenOf(pid: number): number[] {
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function waitForText(c: ChildProcess, text: string): Promise<void> {
  let seen = '';
  await new Promise<void>((resolve, reject) => {
    const on = (d: Buffer) => ((seen += d), seen.includes(text) && resolve());
    c.stderr?.on('data', on);
    c.stdout?.on('data', on);
    c.once('exit', () => reject(new Error(`exited before "${text}": ${seen}`)));
  });
}

async function measure(system: KernelExecResult['system'], rate: number, seconds: number, gen: string, dir: string): Promise<KernelExecResult> {
  const work = fs.mkdtempSync(path.join(dir, `${system.replace('+', '-')}-${rate}-`));
  let pids: () => number[];
  let stop: () => Promise<void>;
  let output: string;
  if (system === 'skafe') {
    fs.writeFileSync(path.join(work, 'bench.rules'), RULE + '\n');
    fs.writeFileSync(path.join(work, 'p.json'), JSON.stringify({ stages: [
      { use: 'netlink', rules: 'bench.rules', backlogLimit: 8192 },
      { use: 'coalesce' },
      { use: 'jsonl', path: 'events.jsonl' },
    ] }));
    output = path.join(work, 'events.jsonl');
    const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...launcherFlags(), path.join(repoRoot, 'bin/skafe'), 'run', path.join(work, 'p.json')], { stdio: ['ignore', 'pipe', 'pipe'] });
    await waitForText(c, 'audit rules loaded');
    pids = () => [c.pid!];
    stop = async () => {
      c.kill('SIGINT');
      await once(c, 'exit');
    };
  } else {
    const plugins: Record<string, string> = {};
    if (system === 'auditd+laurel') {
      fs.mkdirSync(path.join(work, 'laurel'), { recursive: true });
      fs.chownSync(path.join(work, 'laurel'), 999, 995);
      fs.chmodSync(work, 0o755);
      fs.writeFileSync(path.join(work, 'laurel.toml'), `directory = "${path.join(work, 'laurel')}"\nuser = "_laurel"\nstatusreport-period = 0\n[auditlog]\nfile = "audit.log"\nsize = 1000000000\ngenerations = 2\n[transform]\nexecve-argv = [ "array" ]\n[enrich]\npid = true\n`);
      plugins['laurel.conf'] = `active = yes\ndirection = out\ntype = always\nformat = string\npath = /usr/sbin/laurel\nargs = --config ${path.join(work, 'laurel.toml')}\n`;
    }
    const auditd = new PrivateAuditd(work, plugins);
    const backlogBefore = auditStatus().backlog_limit!;
    const pid = await auditd.start();
    execFileSync('auditctl', ['-b', '8192'], { stdio: 'ignore' });
    execFileSync('auditctl', RULE.split(' '), { stdio: 'ignore' });
    output = system === 'auditd' ? auditd.log : path.join(work, 'laurel', 'audit.log');
    await new Promise((r) => setTimeout(r, 500));
    pids = () => [pid, ...childrenOf(pid)];
    stop = async () => {
      execFileSync('auditctl', ['-d', ...RULE.split(' ').slice(1)], { stdio: 'ignore' });
      await auditd.stop();
      execFileSync('auditctl', ['-b', String(backlogBefore)], { stdio: 'ignore' });
    };
  }
  const before = auditStatus();
  const watched = pids();
  const t0 = cpuTicks(watched);
  const w0 = process.hrtime.bigint();
  const out = execFileSync(gen, [String(rate), String(seconds)]).toString().trim().split(' ');
  await new Promise((r) => setTimeout(r, 1000)); // let the agent catch up: its CPU for this load counts
  const wall = Number(process.hrtime.bigint() - w0) / 1e9;
  const t1 = cpuTicks(watched);
  const lost = auditStatus().lost - before.lost;
  await stop();
  let outputBytes = 0;
  try {
    outputBytes = fs.statSync(output).size;
  } catch { /* none */ }
  return {
    system,
    targetRate: rate,
    achievedRate: Math.round(Number(out[0]) / Number(out[1])),
    seconds: Number(out[1]),
    cpuPercent: Math.round(((t1 - t0) / CLK_TCK / wall) * 1000) / 10,
    kernelLost: lost,
    outputBytes,
  };
}

export async function kernelExecBench(opts: { rates?: number[]; seconds?: number } = {}): Promise<KernelExecResult[]> {
  const rates = opts.rates ?? [1000, 5000];
  const seconds = opts.seconds ?? 30;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-kexec-'));
  const gen = path.join(dir, 'execgen');
  fs.writeFileSync(gen + '.c', GENERATOR);
  execFileSync('cc', ['-O2', '-o', gen, gen + '.c']);
  const release = await takeKernelLock();
  const results: KernelExecResult[] = [];
  try {
    const before = auditStatus();
    if (before.pid !== 0) throw new Error(`an audit daemon (pid ${before.pid}) is registered; the bench needs the kernel to itself`);
    for (const rate of rates) {
      for (const system of ['skafe', 'auditd', 'auditd+laurel'] as const) {
        const r = await measure(system, rate, seconds, gen, dir);
        results.push(r);
        process.stderr.write(`kernel-exec ${system.padEnd(14)} target ${rate}/s achieved ${r.achievedRate}/s  CPU ${r.cpuPercent}%  kernel lost ${r.kernelLost}  output ${(r.outputBytes / 1e6).toFixed(1)} MB\n`);
      }
    }
  } finally {
    await release();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const results = await kernelExecBench({ rates: arg('rates')?.split(',').map(Number), seconds: arg('seconds') ? Number(arg('seconds')) : undefined });
  for (const rate of new Set(results.map((r) => r.targetRate))) {
    const at = (sys: KernelExecResult['system']) => results.find((r) => r.targetRate === rate && r.system === sys)!;
    const ours = at('skafe');
    process.stdout.write(
      `kernel-exec ${rate}/s: skafe CPU ${ours.cpuPercent}% = ${(ours.cpuPercent / at('auditd+laurel').cpuPercent).toFixed(2)}× auditd+laurel, ` +
        `${(ours.cpuPercent / at('auditd').cpuPercent).toFixed(2)}× auditd; kernel lost ${ours.kernelLost} (achieved ${ours.achievedRate}/s)\n`,
    );
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}
