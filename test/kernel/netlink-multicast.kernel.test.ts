import t from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { need, repoRoot, skafeBin } from '../helpers/env.js';
import { auditRules, auditStatus, takeKernelLock } from './kernel-lock.js';
import { PrivateAuditd } from './private-auditd.js';

// Acceptance: skafe reads the kernel's readlog multicast group beside a live
// auditd; the marker exec is in both logs, and afterwards the kernel is as it was.
if (need(t as never, 'kernel-audit') && need(t as never, { tool: 'auditd' })) {
  const release = await takeKernelLock();
  t.teardown(release);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-multicast-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));

  t.test('multicast beside auditd', async (t) => {
    const before = auditStatus();
    const rulesBefore = auditRules();
    t.equal(before.pid, 0, 'no audit daemon before (the lock holder owns the kernel)');
    const auditd = new PrivateAuditd(path.join(dir, 'auditd'));
    t.teardown(() => auditd.stop());
    const auditdPid = await auditd.start();

    fs.writeFileSync(path.join(dir, 'test.rules'), '-a always,exit -F arch=b64 -S execve -k skafe-test\n');
    const def = path.join(dir, 'mc.json');
    fs.writeFileSync(def, JSON.stringify({ stages: [
      { use: 'netlink', mode: 'multicast', rules: 'test.rules' },
      { use: 'coalesce' },
      { use: 'jsonl', path: 'mc.jsonl' },
    ] }));
    const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, skafeBin, 'run', def], { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
    let err = '';
    c.stderr!.on('data', (d) => (err += d));
    while (!err.includes('audit rules loaded') && c.exitCode === null) await new Promise((r) => setTimeout(r, 50));
    t.equal(auditStatus().pid, auditdPid, 'auditd stays the registered daemon');
    t.match(err, /multicast mode with a rules file: .*the audit daemon also uses/, "a warning says the rules go into auditd's kernel rule set");
    const marker = `skafe-marker-${randomBytes(6).toString('hex')}`;
    execFileSync('/bin/true', [marker]);
    await new Promise((r) => setTimeout(r, 1500));
    c.kill('SIGINT');
    const [code] = await once(c, 'exit');
    t.equal(code, 0, `skafe run exits cleanly ${code ? err : ''}`);
    t.same(auditRules(), rulesBefore, 'our rule is gone, auditd still running');
    t.equal(auditStatus().pid, auditdPid, 'auditd still registered after skafe left');

    const events = fs.readFileSync(path.join(dir, 'mc.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const hits = events.filter((e) => JSON.stringify(e).includes(marker));
    t.equal(hits.length, 1, 'exactly one event of ours has the marker');
    t.same(hits[0]?.process?.args, ['/bin/true', marker], 'process.args');
    t.equal(hits[0]?.process?.executable, fs.realpathSync('/bin/true'), 'process.executable');
    t.ok(hits[0]?.tags?.includes('skafe-test'), 'tags');

    await auditd.stop();
    const log = fs.readFileSync(auditd.log, 'utf8');
    t.match(log, new RegExp(`type=EXECVE .*a1="${marker}"`), "the marker exec is in auditd's log too");
    const after = auditStatus();
    t.equal(after.pid, 0, 'pid 0 after auditd stopped');
    t.equal(after.enabled, before.enabled, 'enabled restored');
    t.equal(after.backlog_limit, before.backlog_limit, 'backlog_limit unchanged');
  });
}
