import t, { type Test } from 'tap';
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { need, repoRoot, skafeBin } from '../helpers/env.js';
import { auditRules, auditStatus, takeKernelLock } from './kernel-lock.js';
import { AuditSession } from '../../src/kernel/audit-session.js';
import { isSkafeError } from '../../src/errors.js';

if (need(t as never, 'kernel-audit')) {
  const release = await takeKernelLock();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-netlink-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'test.rules'), '-a always,exit -F arch=b64 -S execve -k skafe-test\n');
  const defFile = (name: string, extra: Record<string, unknown> = {}) => {
    const f = path.join(dir, `${name}.json`);
    fs.writeFileSync(f, JSON.stringify({ stages: [
      { use: 'netlink', mode: 'unicast', rules: 'test.rules', statusIntervalMs: 200, ...extra },
      { use: 'coalesce' },
      { use: 'jsonl', path: `${name}.jsonl` },
    ] }));
    return f;
  };
  const before = auditStatus();
  const rulesBefore = auditRules();
  // A plain node: tap puts its process-info hooks into every child (through
  // NODE_OPTIONS, re-added even when the spawn env drops it), and their
  // signal-exit listeners make ours stand back (see audit-session.ts).
  // `env -u` removes it after tap's spawn hook has run.
  const children: ChildProcess[] = [];
  const node = (args: string[], stdio: Array<'pipe' | 'ignore'>) => {
    const c = spawn('env', ['-u', 'NODE_OPTIONS', process.execPath, ...args], { stdio: stdio as never, cwd: repoRoot });
    children.push(c);
    return c;
  };
  // A failed test must not leave a registered child behind: SIGTERM lets it restore the kernel.
  t.teardown(async () => {
    for (const c of children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      c.kill('SIGTERM');
      await Promise.race([once(c, 'exit'), new Promise((r) => setTimeout(r, 3000))]);
    }
  });

  /** Waits until `text` appears on the child's stdout or stderr. */
  const waitFor = (child: ChildProcess, text: string, ms = 20000) =>
    new Promise<void>((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => reject(new Error(`timed out waiting for "${text}"; got: ${seen.slice(-500)}`)), ms);
      const on = (d: Buffer) => {
        seen += d.toString();
        if (seen.includes(text)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout?.on('data', on);
      child.stderr?.on('data', on);
      child.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`child exited (${code ?? sig}) before "${text}": ${seen.slice(-800)}`));
      });
    });

  const checkRestored = (t: Test, what: string) => {
    const s = auditStatus();
    t.equal(s.pid, 0, `${what}: auditctl -s shows pid 0`);
    t.equal(s.enabled, before.enabled, `${what}: enabled restored to ${before.enabled}`);
    t.equal(s.backlog_limit, before.backlog_limit, `${what}: backlog_limit restored`);
    t.equal(s.backlog_wait_time, before.backlog_wait_time, `${what}: backlog_wait_time restored`);
    t.same(auditRules(), rulesBefore, `${what}: auditctl -l shows no rule of ours`);
  };

  t.test('unicast: netlink → coalesce → jsonl finds exactly the marker exec', async (t) => {
    const marker = `skafe-marker-${randomBytes(6).toString('hex')}`;
    const def = defFile('marker');
    const child = node([skafeBin, 'run', def], ['ignore', 'pipe', 'pipe']);
    await waitFor(child, 'audit rules loaded');
    const during = auditStatus();
    t.equal(during.pid, child.pid, 'the kernel sends records to skafe (auditctl -s pid)');
    t.equal(during.enabled, 1, 'auditing enabled while running');
    t.ok(auditRules().some((l) => l.includes('key=skafe-test')), 'our rule is loaded');
    execFileSync('/bin/true', [marker]);
    await new Promise((r) => setTimeout(r, 1500));
    child.kill('SIGINT');
    const [code] = await once(child, 'exit');
    t.equal(code, 0, 'skafe run exits 0 after SIGINT');
    const events = fs.readFileSync(path.join(dir, 'marker.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    const hits = events.filter((e) => JSON.stringify(e).includes(marker));
    if (hits.length !== 1) t.comment(`${events.length} events; marker hits: ${JSON.stringify(hits).slice(0, 3000)}`);
    t.equal(hits.length, 1, 'exactly one event mentions the marker');
    const ev = hits[0] ?? {};
    t.same(ev.process?.args, ['/bin/true', marker], 'process.args');
    t.equal(ev.process?.executable, fs.realpathSync('/bin/true'), 'process.executable');
    t.ok(Array.isArray(ev.tags) && ev.tags.includes('skafe-test'), 'tags carry the rule key');
    checkRestored(t, 'after SIGINT');
  });

  const child = (how: string, extra: Record<string, unknown> = {}) =>
    node([path.join(repoRoot, 'dist/test/kernel/netlink-child.js'), defFile(`life-${how}`, extra), how], ['pipe', 'pipe', 'pipe']);

  for (const how of ['end', 'destroy', 'throw']) {
    t.test(`lifecycle: ${how} restores the kernel`, async (t) => {
      // A backlog setting different from the current one, to see it put back.
      const c = child(how, { backlogLimit: before.backlog_limit + 7, backlogWaitTime: 1000 });
      await waitFor(c, 'ready');
      await new Promise((r) => setTimeout(r, 200));
      const s = auditStatus();
      t.equal(s.pid, c.pid, 'registered');
      t.equal(s.backlog_limit, before.backlog_limit + 7, 'backlog_limit changed while running');
      c.stdin!.write('go\n');
      const [code] = await once(c, 'exit');
      if (how === 'throw') t.not(code, 0, 'the uncaught exception kills the process');
      checkRestored(t, how);
    });
  }

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    t.test(`lifecycle: ${sig} with no handler of the caller's restores the kernel`, async (t) => {
      const c = child('signal', { backlogLimit: before.backlog_limit + 3 });
      await waitFor(c, 'ready');
      t.equal(auditStatus().pid, c.pid, 'registered');
      c.kill(sig);
      const [code, signal] = await once(c, 'exit');
      t.ok(signal === sig || code === 128 + os.constants.signals[sig], `the process still ends as by ${sig} (${signal ?? code})`);
      checkRestored(t, sig);
    });
  }

  // A source nobody reads (netlink-drain-child.ts): it stops reading the socket
  // and the records of n getppid calls wait there; then it is stopped (or
  // destroyed) and reports what came out.
  fs.writeFileSync(path.join(dir, 'drain.rules'), '-a always,exit -F arch=b64 -S getppid -k skafe-drain\n');
  type DrainReport = { syscalls?: number; losses?: number; extra?: Record<string, number>; warnings?: string[] };
  const drainRun = async (how: 'stop' | 'destroy', n: number) => {
    const c = node([path.join(repoRoot, 'dist/test/kernel/netlink-drain-child.js'), path.join(dir, 'drain.rules'), how], ['pipe', 'pipe', 'pipe']);
    let out = '';
    c.stdout!.on('data', (d) => (out += d));
    await waitFor(c, 'ready');
    const portid = Number(/ready (-?\d+)/.exec(out)?.[1]);
    const py = spawnSync('/usr/bin/python3', ['-c', `import os\nfor _ in range(${n}): os.getppid()`]);
    await new Promise((r) => setTimeout(r, 1000));
    // /proc/net/netlink: sk Eth Pid Groups Rmem …: the bytes waiting in the child's data socket
    const row = fs.readFileSync('/proc/net/netlink', 'utf8').split('\n').map((l) => l.trim().split(/\s+/)).find((f) => f[1] === '9' && Number(f[2]) === portid);
    c.stdin!.write(`stop ${py.pid}\n`);
    const [code] = await once(c, 'exit');
    const got = JSON.parse(out.split('\n').find((l) => l.startsWith('{')) ?? '{}') as DrainReport;
    return { pyStatus: py.status, waiting: Number(row?.[4] ?? 0), code, got };
  };

  t.test('records still in the socket when the source stops are delivered, not dropped', async (t) => {
    const n = 3000;
    const { pyStatus, waiting, code, got } = await drainRun('stop', n);
    t.equal(pyStatus, 0, `${n} getppid calls made`);
    t.ok(waiting > 1024 * 1024, `records wait in the socket when the source stops (${waiting} bytes)`);
    t.equal(code, 0, 'the child exits cleanly');
    // (python makes a few getppid calls of its own as it starts)
    t.ok((got.syscalls ?? 0) >= n, `every getppid call's SYSCALL record came out (${got.syscalls} for ${n} calls)`);
    t.equal(got.losses, 0, 'no loss record');
    t.equal(got.extra?.kernelLost ?? 0, 0, 'the kernel lost nothing');
    t.notOk(got.extra?.droppedAtDestroy, 'nothing dropped at the end');
    checkRestored(t, 'after the drain');
  });

  t.test('records still in the socket when the source is destroyed are counted as dropped', async (t) => {
    const n = 3000;
    const { code, got } = await drainRun('destroy', n);
    t.equal(code, 0, 'the child exits cleanly');
    // ~3 records a call; the stream's own buffer (8 batches) went with it uncounted
    t.ok((got.extra?.droppedAtDestroy ?? 0) >= n, `the records left in the socket are counted (${got.extra?.droppedAtDestroy})`);
    t.ok(got.warnings?.some((w) => w.includes('dropped')), 'and reported');
    checkRestored(t, 'after the destroy');
  });

  t.test('skafe run: SIGTERM drains and restores', async (t) => {
    const c = node([skafeBin, 'run', defFile('run-term')], ['ignore', 'pipe', 'pipe']);
    await waitFor(c, 'audit rules loaded');
    c.kill('SIGTERM');
    const [code] = await once(c, 'exit');
    t.equal(code, 0, 'clean exit');
    checkRestored(t, 'skafe run SIGTERM');
  });

  /** What opening a session of `mode` was refused with (undefined: it opened, and is closed again). */
  async function refusal(mode: 'unicast' | 'multicast'): Promise<unknown> {
    try {
      const s = await AuditSession.open({ mode, onRecords: () => {}, onError: () => {} });
      await s.restore();
    } catch (e) {
      return e;
    }
    return undefined;
  }

  t.test('unicast refuses when another audit daemon holds the kernel', async (t) => {
    const c = child('end');
    await waitFor(c, 'ready');
    try {
      const err = await refusal('unicast');
      t.ok(isSkafeError(err, 'SKAFE_AUDIT_DAEMON_BUSY'), 'refused with SKAFE_AUDIT_DAEMON_BUSY');
      t.match((err as Error)?.message, new RegExp(`process ${c.pid} .*plugin.*multicast`), 'names the pid and suggests plugin or multicast mode');
      t.equal(auditStatus().pid, c.pid, 'the other daemon keeps its registration');
    } finally {
      c.stdin!.write('go\n');
      await once(c, 'exit');
    }
    checkRestored(t, 'after refusal');
  });

  t.teardown(release);

  t.test('a second session of the same mode is refused while the first runs (multicast: no pid to see)', async (t) => {
    const c = child('end', { mode: 'multicast' });
    await waitFor(c, 'ready');
    try {
      const err = await refusal('multicast');
      t.ok(isSkafeError(err, 'SKAFE_AUDIT_DAEMON_BUSY'), 'refused with SKAFE_AUDIT_DAEMON_BUSY');
      t.match((err as Error)?.message, new RegExp(`pid ${c.pid}\\).*one session per mode`), 'names the other session');
      t.ok(fs.readFileSync(path.join(process.env.SKAFE_RUN_DIR ?? '/run/skafe', 'audit-session-multicast.json'), 'utf8').includes(`"pid":${c.pid}`), "the first session's journal is left as it was");
    } finally {
      c.stdin!.write('go\n');
      await once(c, 'exit');
    }
    checkRestored(t, 'after the refused second session');
  });

  t.test("-d and -W lines that remove the machine's own rules: they are put back on exit", async (t) => {
    const watched = path.join(dir, 'pre-watch');
    fs.writeFileSync(watched, '');
    const theirs = ['-a', 'always,exit', '-F', 'arch=b64', '-S', 'unlinkat', '-k', 'skafe-preexisting'];
    const theirWatch = ['-w', watched, '-p', 'w', '-k', 'skafe-prewatch'];
    execFileSync('auditctl', theirs);
    execFileSync('auditctl', theirWatch);
    const machine = auditRules();
    t.teardown(() => {
      // whatever happened, leave the machine as the test found it
      for (const r of [theirs, theirWatch]) spawnSync('auditctl', [r[0] === '-a' ? '-d' : '-W', ...r.slice(1)]);
    });
    const { compileRules } = await import('../../src/audit/rules/compile.js');
    const rules = compileRules(
      [
        '-d always,exit -F arch=b64 -S unlinkat -k skafe-preexisting',
        `-W ${watched} -p w -k skafe-prewatch`,
        // one of our own, then removed again by the file itself: nothing to put back for it
        '-a always,exit -F arch=b64 -S execve -k skafe-mine',
        '-d always,exit -F arch=b64 -S execve -k skafe-mine',
        '-a always,exit -F arch=b64 -S openat -k skafe-kept',
      ].join('\n') + '\n',
      'remove.rules',
    );
    const session = await AuditSession.open({ mode: 'multicast', rules, onRecords() {}, onError() {} });
    const during = auditRules().join('\n');
    t.notMatch(during, /skafe-preexisting|skafe-prewatch|skafe-mine/, 'while running: the removed rules are gone');
    t.match(during, /skafe-kept/, "while running: the file's own rule is in");
    await session.restore();
    t.same(auditRules(), machine, "after: exactly the machine's rules, its removed ones back");
  });

  t.test('a bad rules file loads nothing and names the line', async (t) => {
    fs.writeFileSync(path.join(dir, 'bad.rules'), '-a always,exit -F arch=b64 -S execve -k ok\n-a always,exit -F arch=b64 -S nosuchcall -k bad\n');
    const f = path.join(dir, 'bad.json');
    fs.writeFileSync(f, JSON.stringify({ stages: [{ use: 'netlink', rules: 'bad.rules' }, { use: 'jsonl', path: 'bad.jsonl' }] }));
    const c = node([skafeBin, 'run', f], ['ignore', 'pipe', 'pipe']);
    let err = '';
    c.stderr!.on('data', (d) => (err += d));
    const [code] = await once(c, 'exit');
    t.not(code, 0, 'skafe run fails');
    t.match(err, /bad\.rules:2: .*nosuchcall/, 'the error names file, line and syscall');
    checkRestored(t, 'after a bad rules file');
  });
}
