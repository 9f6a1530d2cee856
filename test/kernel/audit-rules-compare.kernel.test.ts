import t from 'tap';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { need, repoRoot } from '../helpers/env.js';
import { auditRules, takeKernelLock } from './kernel-lock.js';
import { AuditNetlink } from '../../src/kernel/audit-netlink.js';
import { compileRules } from '../../src/audit/rules/compile.js';
import { deleteRules, loadRules } from '../../src/kernel/rule-loader.js';

// Acceptance: loading a rules file through our compiler gives the kernel the
// same rules as `auditctl -R`, judged by `auditctl -l`.
const EXAMPLES = '/usr/share/doc/auditd/examples/rules';
// Files we deliberately do not load, and why.
const NOT_LOADED: Record<string, RegExp> = {
  '11-loginuid.rules': /--loginuid-immutable: not supported/, // one-way switch: skafe could not restore it
  '22-ignore-chrony.rules': /no such user/, // names the chrony user, which this machine does not have (auditctl fails too)
};

if (need(t as never, 'kernel-audit')) {
  const release = await takeKernelLock();
  t.teardown(release);
  const conn = new AuditNetlink();
  t.teardown(() => conn.close());
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-rules-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const rulesBefore = auditRules();

  const files = [path.join(repoRoot, 'pipelines/audit-rules/default.rules')];
  if (fs.existsSync(EXAMPLES)) files.push(...fs.readdirSync(EXAMPLES).filter((f) => f.endsWith('.rules')).sort().map((f) => path.join(EXAMPLES, f)));
  else if (process.env.CI === 'true') t.fail(`${EXAMPLES} is missing (Debian package auditd)`);

  for (const file of files) {
    t.test(path.basename(file), async (t) => {
      const text = fs.readFileSync(file, 'utf8');
      const expectRefusal = NOT_LOADED[path.basename(file)];
      if (expectRefusal) {
        t.throws(() => compileRules(text, file), expectRefusal, 'refused with a clear reason');
        return;
      }
      const set = compileRules(text, file);
      // Only the rule lines: -D, -b, -f, -e … would change the machine for everyone.
      // -c: like our continueOnError, keep going past rules this kernel refuses (duplicates, missing paths).
      const only = '-c\n' + text.split('\n').filter((l) => /^\s*-[aAw]\s/.test(l)).join('\n') + '\n';
      fs.writeFileSync(path.join(tmp, 'only.rules'), only);
      const r = spawnSync('auditctl', ['-R', path.join(tmp, 'only.rules')], { encoding: 'utf8' });
      const byAuditctl = auditRules();
      // auditctl's rules are the same as ours, so ours delete them: a leftover means a difference.
      await deleteRules(conn, set.rules);
      t.same(auditRules(), rulesBefore, 'deleting our compiled rules removes every rule auditctl loaded');
      const res = await loadRules(conn, set, { continueOnError: true });
      const byUs = auditRules();
      await deleteRules(conn, res.added);
      t.same(byUs, byAuditctl, `auditctl -l is the same after ours as after auditctl -R (${byUs.length} rules; auditctl status ${r.status})`);
      t.same(auditRules(), rulesBefore, 'nothing of ours left');
    });
  }
}
