import t from 'tap';
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { need, repoRoot, skafeBin } from '../helpers/env.js';
import { auditRules, auditStatus, takeKernelLock } from './kernel-lock.js';

// Acceptance: with a tiny backlog_limit and no waiting, a burst of execs makes
// the kernel drop records; the loss skafe reports equals the kernel's `lost` delta.
if (need(t as never, 'kernel-audit')) {
  const release = await takeKernelLock();
  t.teardown(release);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-loss-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'loss.rules'), '-a always,exit -F arch=b64 -S execve -k skafe-loss\n');
  const def = path.join(dir, 'loss.json');
  fs.writeFileSync(def, JSON.stringify({ stages: [
    { use: 'netlink', rules: 'loss.rules', backlogLimit: 2, backlogWaitTime: 0, statusIntervalMs: 200 },
    { use: 'coalesce' },
    { use: 'jsonl', path: 'loss.jsonl' },
  ] }));

  t.test('reported loss equals the kernel lost delta', async (t) => {
    const before = auditStatus();
    const rulesBefore = auditRules();
    const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, skafeBin, 'run', def, '--stats'], { stdio: ['ignore', 'pipe', 'pipe'], cwd: repoRoot });
    let err = '';
    c.stderr!.on('data', (d) => (err += d));
    while (!err.includes('audit rules loaded')) {
      if (c.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(auditStatus().backlog_limit, 2, 'backlog_limit set tiny');
    // 400 execs at once, each an event of ~7 records: far past a backlog of 2.
    execFileSync('sh', ['-c', 'i=0; while [ $i -lt 400 ]; do /bin/true skafe-loss-flood & i=$((i+1)); done; wait']);
    await new Promise((r) => setTimeout(r, 1000));
    c.kill('SIGINT');
    const [code] = await once(c, 'exit');
    t.equal(code, 0, 'skafe run exits cleanly');
    const after = auditStatus();
    const kernelDelta = after.lost - before.lost;
    t.ok(kernelDelta > 0, `the kernel lost records (${kernelDelta})`);

    const events = fs.readFileSync(path.join(dir, 'loss.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    let reported = 0;
    let lossEvents = 0;
    for (const e of events) {
      for (const r of e.auditd?.records ?? []) {
        if (r.type !== 'SKAFE_KERNEL_LOSS') continue;
        lossEvents++;
        reported += Number(r.fields?.kernel_lost ?? NaN);
      }
    }
    t.ok(lossEvents > 0, `loss is reported as events of its own (${lossEvents})`);
    t.comment(`reported ${reported}, kernel delta ${kernelDelta}, counter ${/kernelLost=(\d+)/.exec(err)?.[1]}`);
    t.equal(reported, kernelDelta, 'the loss events add up to the kernel lost delta');
    const m = /kernelLost=(\d+)/.exec(err);
    t.equal(Number(m?.[1]), kernelDelta, 'the stage counter kernelLost matches too');
    const s = auditStatus();
    t.equal(s.pid, 0, 'unregistered');
    t.equal(s.backlog_limit, before.backlog_limit, 'backlog_limit restored');
    t.equal(s.backlog_wait_time, before.backlog_wait_time, 'backlog_wait_time restored');
    t.same(auditRules(), rulesBefore, 'our rule removed');
  });
}
