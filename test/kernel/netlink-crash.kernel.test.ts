// A unicast skafe killed with SIGKILL cannot clean up after itself: its rules
// stay loaded and its pid stays registered. The next run finds the journal the
// dead one left (SKAFE_RUN_DIR) and undoes those changes before starting, so
// after the next clean exit the kernel is as it was before either run.
import t from 'tap';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { need, repoRoot } from '../helpers/env.js';
import { sleep } from '../helpers/run.js';
import { auditRules, auditStatus, takeKernelLock } from './kernel-lock.js';

if (need(t as never, 'kernel-audit')) {
  const release = await takeKernelLock();
  t.teardown(release);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-crash-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const before = auditStatus();
  const rulesBefore = auditRules();
  fs.writeFileSync(path.join(dir, 'crash.rules'), '-a always,exit -F arch=b64 -S execve -k skafe-crash\n');
  const def = path.join(dir, 'p.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'netlink', mode: 'unicast', rules: 'crash.rules' }, { use: 'coalesce' }, { use: 'jsonl', path: 'out.jsonl' }] }));
  const env: NodeJS.ProcessEnv = { ...process.env, SKAFE_RUN_DIR: path.join(dir, 'run') };
  delete env.NODE_OPTIONS;

  const start = (how: string) => {
    const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, path.join(repoRoot, 'dist/test/kernel/netlink-child.js'), def, how], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    c.stderr!.on('data', (d) => (out += d));
    const until = (text: string, ms = 20000) =>
      new Promise<void>((resolve, reject) => {
        const end = Date.now() + ms;
        const tick = () => (out.includes(text) ? resolve() : Date.now() > end ? reject(new Error(`no "${text}" in: ${out}`)) : setTimeout(tick, 50));
        tick();
      });
    return { c, until, output: () => out };
  };
  const cleanup = () => {
    // Belt and braces: whatever this test left behind, take it away.
    try {
      execFileSync('auditctl', ['-d', 'always,exit', '-F', 'arch=b64', '-S', 'execve', '-F', 'key=skafe-crash'], { stdio: 'ignore' });
    } catch {
      /* not there */
    }
    const s = auditStatus();
    if (s.pid !== 0 && s.pid !== before.pid) {
      try {
        process.kill(s.pid, 0);
      } catch {
        execFileSync('/usr/bin/python3', ['-c', 'import audit; fd = audit.audit_open(); audit.audit_set_pid(fd, 0, 0)'], { stdio: 'ignore' });
      }
    }
    if (auditStatus().enabled !== before.enabled) execFileSync('auditctl', ['-e', String(before.enabled)], { stdio: 'ignore' });
  };
  t.teardown(cleanup);

  t.test('SIGKILL leaves state behind; the next run undoes it first, and its own clean exit restores the kernel', async (t) => {
    const first = start('signal');
    await first.until('ready');
    first.c.kill('SIGKILL');
    await new Promise((r) => (first.c as ChildProcess).once('exit', r));
    t.ok(auditRules().some((r) => r.includes('skafe-crash')), 'the killed run left its rule loaded (nothing can run on SIGKILL)');
    t.ok(fs.existsSync(path.join(dir, 'run', 'audit-session-unicast.json')), 'and its journal');

    const second = start('end');
    await second.until('ready');
    t.match(second.output(), /did not exit cleanly: undoing its kernel audit changes/, 'the second run says it recovered');
    t.equal(auditRules().filter((r) => r.includes('skafe-crash')).length, 1, 'one copy of the rule: its own');
    second.c.stdin!.write('x');
    await second.until('finished');
    await new Promise((r) => (second.c.exitCode !== null ? r(null) : second.c.once('exit', r)));
    await sleep(100);
    const s = auditStatus();
    t.equal(s.pid, 0, 'pid 0');
    t.equal(s.enabled, before.enabled, `enabled back to ${before.enabled}`);
    t.equal(s.backlog_limit, before.backlog_limit, 'backlog_limit back');
    t.same(auditRules(), rulesBefore, 'no rule of either run left');
    t.notOk(fs.existsSync(path.join(dir, 'run', 'audit-session-unicast.json')), 'journal removed on the clean exit');
  });
}
