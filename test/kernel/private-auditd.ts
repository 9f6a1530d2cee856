import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { auditStatus } from './kernel-lock.js';

/**
 * A real auditd (Debian package) on a private configuration: `auditd -n -c DIR`
 * with its log in DIR, RAW format, and plugins only from DIR/plugins.d (none
 * unless given), never the system service. stop() puts back `enabled`, which
 * auditd turns on and leaves on.
 */
export class PrivateAuditd {
  readonly log: string;
  private child: ChildProcess | undefined;
  private readonly enabledBefore: number;

  constructor(readonly dir: string, private readonly plugins: Record<string, string> = {}) {
    this.log = path.join(dir, 'log', 'audit.log');
    this.enabledBefore = auditStatus().enabled!;
  }

  async start(): Promise<number> {
    for (const d of ['etc', 'log', 'plugins.d']) fs.mkdirSync(path.join(this.dir, d), { recursive: true });
    for (const [name, conf] of Object.entries(this.plugins)) fs.writeFileSync(path.join(this.dir, 'plugins.d', name), conf, { mode: 0o640 });
    const conf = [
      'local_events = yes', 'write_logs = yes', `log_file = ${this.log}`, 'log_group = root', 'log_format = RAW',
      'flush = INCREMENTAL_ASYNC', 'freq = 50', 'max_log_file = 256', 'num_logs = 0', 'max_log_file_action = IGNORE',
      'space_left = 75', 'space_left_action = IGNORE', 'admin_space_left = 50', 'admin_space_left_action = IGNORE',
      'disk_full_action = IGNORE', 'disk_error_action = IGNORE', 'priority_boost = 0', 'q_depth = 20000',
      'overflow_action = IGNORE', 'max_restarts = 0', `plugin_dir = ${path.join(this.dir, 'plugins.d')}`, 'end_of_event_timeout = 2',
    ].join('\n') + '\n';
    fs.writeFileSync(path.join(this.dir, 'etc', 'auditd.conf'), conf, { mode: 0o600 });
    const c = spawn('env', ['-u', 'NODE_OPTIONS', 'auditd', '-n', '-c', path.join(this.dir, 'etc')], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = c;
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    for (let i = 0; i < 100; i++) {
      if (auditStatus().pid === c.pid) return c.pid!;
      if (c.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.stop();
    throw new Error(`auditd did not register: ${out}`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async stop(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      c.kill('SIGTERM');
      await Promise.race([once(c, 'exit'), new Promise((r) => setTimeout(r, 10000))]);
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    this.child = undefined;
    if (auditStatus().enabled !== this.enabledBefore) execFileSync('auditctl', ['-e', String(this.enabledBefore)], { stdio: 'ignore' });
  }
}
