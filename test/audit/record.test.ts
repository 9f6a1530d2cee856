import t from 'tap';
import { parseRecordLine, type AuditRecord } from '../../src/audit/record.js';

const ok = (line: string, hint?: number): AuditRecord => {
  const r = parseRecordLine(line, hint);
  if ('error' in r) throw new Error(r.error);
  return r;
};

t.test('audit.log text form', async (t) => {
  const r = ok('type=SYSCALL msg=audit(1795533297.062:205): arch=c000003e syscall=59 success=yes');
  t.equal(r.type, 'SYSCALL');
  t.equal(r.typeNum, 1300);
  t.equal(r.id, '1795533297.062:205', 'id keeps the zero-padded milliseconds');
  t.equal(r.sec, 1795533297);
  t.equal(r.msec, 62);
  t.equal(r.serial, 205);
  t.equal(r.body, 'arch=c000003e syscall=59 success=yes');
  t.equal(r.node, undefined);
});

t.test('node= prefix and ENRICHED part', async (t) => {
  const r = ok('node=web-1 type=SYSCALL msg=audit(1.002:3): uid=0 auid=4294967295\x1dUID="root" AUID="unset"');
  t.equal(r.node, 'web-1');
  t.equal(r.body, 'uid=0 auid=4294967295');
  t.equal(r.enriched, 'UID="root" AUID="unset"');
});

t.test('bare netlink form, type from the netlink header', async (t) => {
  const r = ok('audit(1460751363.327:9): pid=8433 uid=0', 1300);
  t.equal(r.type, 'SYSCALL');
  t.equal(r.serial, 9);
  const u = ok('audit(1460751363.327:9): pid=8433 uid=0');
  t.equal(u.type, 'UNKNOWN');
});

t.test('numeric and UNKNOWN[n] types', async (t) => {
  t.equal(ok('type=1300 msg=audit(1.000:1): x=1').type, 'SYSCALL');
  const u = ok('type=UNKNOWN[1999] msg=audit(1.000:1): x=1');
  t.equal(u.typeNum, 1999);
  t.equal(u.type, 'UNKNOWN[1999]');
});

t.test('malformed lines are errors, not exceptions', async (t) => {
  for (const bad of [
    'type=SYSCALL arch=c000003e',
    'type=SYSCALL msg=audit(1795533297.062:205',
    'type=SYSCALL msg=audit(17955x3297.062:205): a=1',
    'type=SYSCALL msg=audit(1795533297:205): a=1',
    'garbage \u0000\u0001\u0002',
    'type=sys{call} msg=audit(1.000:1): a=1',
    '',
  ]) {
    const r = parseRecordLine(bad);
    t.ok('error' in r, `rejected: ${JSON.stringify(bad)}`);
  }
});
