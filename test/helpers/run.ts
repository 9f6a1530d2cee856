import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { skafeBin } from './env.js';

export interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run `skafe ARGS…` to completion. */
export function skafe(args: string[], opts: { cwd?: string; input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  const child = spawnSkafe(args, opts);
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  else child.stdin!.end();
  return collect(child, opts.timeoutMs ?? 60000);
}

/** The environment a user's shell would give: without tap's loader hooks in NODE_OPTIONS. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (k !== 'NODE_OPTIONS' && !k.startsWith('TAP') && !k.startsWith('_TAPJS')) env[k] = v;
  return { ...env, ...extra };
}

export function spawnSkafe(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): ChildProcess {
  return spawn(process.execPath, [skafeBin, ...args], {
    cwd: opts.cwd,
    env: cleanEnv(opts.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export function collect(child: ChildProcess, timeoutMs = 60000): Promise<Ran> {
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`skafe timed out after ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A temporary directory removed when the test ends. */
export function tmpdir(t: { teardown(fn: () => void): void }, prefix = 'skafe-test-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function readJsonl(text: string): any[] {
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll until fn() is truthy or the time is up. */
export async function waitFor<T>(fn: () => T | Promise<T>, timeoutMs = 10000, what = 'condition'): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
