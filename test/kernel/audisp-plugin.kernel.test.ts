// The stdin source for real: a private auditd (Debian's, `auditd -n -c DIR`)
// starts skafe as its plugin and writes records to skafe's stdin in the audisp
// wire format; skafe coalesces them and writes JSON lines.
import t from 'tap';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { need, skafeBin } from '../helpers/env.js';
import { readJsonl, waitFor, sleep } from '../helpers/run.js';
import { auditRules, auditStatus, takeKernelLock } from './kernel-lock.js';

if (need(t as never, 'kernel-audit') && need(t as never, { tool: 'auditd' })) {
  const release = await takeKernelLock();
  t.teardown(release);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-audisp-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const before = auditStatus();
  const rulesBefore = auditRules();
  const rule = ['-a', 'always,exit', '-F', 'arch=b64', '-S', 'execve', '-F', 'key=skafe-plugin'];
  let auditd: ChildProcess | undefined;

  const restore = async () => {
    try {
      execFileSync('auditctl', ['-d', ...rule.slice(1)], { stdio: 'ignore' });
    } catch {
      /* not loaded */
    }
    if (auditd && auditd.exitCode === null) {
      auditd.kill('SIGTERM');
      for (let i = 0; i < 50 && auditd.exitCode === null; i++) await sleep(100);
      if (auditd.exitCode === null) auditd.kill('SIGKILL');
      await sleep(100);
      // auditd unregisters on a clean exit; if it could not, its stale pid must not stay behind.
      if (auditStatus().pid === auditd.pid) {
        execFileSync('/usr/bin/python3', ['-c', 'import audit; fd = audit.audit_open(); audit.audit_set_pid(fd, 0, 0)'], { stdio: 'ignore' });
      }
    }
    if (auditStatus().enabled !== before.enabled) execFileSync('auditctl', ['-e', String(before.enabled)], { stdio: 'ignore' });
  };
  t.teardown(restore);

  t.test('auditd runs skafe as its plugin; the marker exec arrives once, whole', async (t) => {
    for (const d of ['etc', 'log', 'plugins.d']) fs.mkdirSync(path.join(dir, d));
    const out = path.join(dir, 'plugin-events.jsonl');
    fs.writeFileSync(path.join(dir, 'plugin.json'), JSON.stringify({ stages: [{ use: 'stdin' }, { use: 'coalesce', idleTimeoutMs: 200 }, { use: 'jsonl', path: out }] }));
    // auditd passes at most two arguments to a plugin: a wrapper keeps the command whole.
    const wrapper = path.join(dir, 'skafe-plugin.sh');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${skafeBin} run ${path.join(dir, 'plugin.json')} 2>>${path.join(dir, 'plugin.err')}\n`, { mode: 0o755 });
    fs.writeFileSync(path.join(dir, 'plugins.d', 'skafe.conf'), `active = yes\ndirection = out\npath = ${wrapper}\ntype = always\nformat = string\n`);
    fs.writeFileSync(
      path.join(dir, 'etc', 'auditd.conf'),
      [
        'local_events = yes',
        'write_logs = yes',
        `log_file = ${path.join(dir, 'log', 'audit.log')}`,
        'log_group = root',
        'log_format = ENRICHED',
        'flush = INCREMENTAL_ASYNC',
        'freq = 50',
        'max_log_file = 64',
        'num_logs = 0',
        'max_log_file_action = IGNORE',
        'space_left = 75',
        'space_left_action = IGNORE',
        'admin_space_left = 50',
        'admin_space_left_action = IGNORE',
        'disk_full_action = IGNORE',
        'disk_error_action = IGNORE',
        'priority_boost = 0',
        'q_depth = 2000',
        'overflow_action = IGNORE',
        'max_restarts = 0',
        `plugin_dir = ${path.join(dir, 'plugins.d')}`,
        'end_of_event_timeout = 2',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    auditd = spawn('auditd', ['-n', '-c', path.join(dir, 'etc')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let auditdOut = '';
    auditd.stdout!.on('data', (d) => (auditdOut += d));
    auditd.stderr!.on('data', (d) => (auditdOut += d));
    await waitFor(() => auditStatus().pid === auditd!.pid, 10000, `auditd to register (${auditdOut})`);
    t.comment(`auditd pid ${auditd.pid}`);
    execFileSync('auditctl', rule);
    execFileSync('auditctl', ['-e', '1']);
    const marker = `skafe-marker-${randomBytes(6).toString('hex')}`;
    execFileSync('/bin/true', [marker]);
    const find = () => (fs.existsSync(out) ? readJsonl(fs.readFileSync(out, 'utf8')).filter((e) => e.process?.args?.includes(marker)) : []);
    await waitFor(() => find().length > 0, 20000, 'the marker exec in skafe\'s output');
    // Stopping auditd closes the plugin's stdin: skafe drains and exits.
    await restore();
    await sleep(300);
    const mine = find();
    t.equal(mine.length, 1, 'exactly one event for the marker exec');
    const e = mine[0];
    t.same(e.process.args, ['/bin/true', marker]);
    t.equal(e.process.executable, '/usr/bin/true');
    t.same(e.tags, ['skafe-plugin']);
    t.equal(e.auditd.data.syscall, 'execve');
    t.ok(e.auditd.records.some((r: any) => r.type === 'PROCTITLE') && e.auditd.records.some((r: any) => r.type === 'EXECVE'), 'all records of the event together');
    t.match(fs.readFileSync(path.join(dir, 'log', 'audit.log'), 'utf8'), marker.split('').map((c) => c.charCodeAt(0).toString(16).toUpperCase()).join('').slice(0, 10) , 'auditd logged it too');
    const err = fs.existsSync(path.join(dir, 'plugin.err')) ? fs.readFileSync(path.join(dir, 'plugin.err'), 'utf8') : '';
    t.notMatch(err, /error/i, `the plugin ran cleanly: ${err}`);
    const s = auditStatus();
    t.equal(s.pid, 0, 'auditctl -s shows pid 0 afterwards');
    t.equal(s.enabled, before.enabled, 'enabled restored');
    t.same(auditRules(), rulesBefore, 'no rule of ours left');
  });
}
