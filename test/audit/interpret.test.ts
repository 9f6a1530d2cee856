// interpret() on hand-made records for the cases a corpus shows rarely or not
// at all: long arguments split over records, several EXECVE records, several
// rule keys, ENRICHED names, problem reporting, socket direction and
// decoding; and the users database and syscall tables.
import t from 'tap';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseRecordLine, type AuditRecord } from '../../src/audit/record.js';
import { interpret } from '../../src/audit/interpret.js';
import { decodeSockaddr, ipv6ToText } from '../../src/audit/sockaddr.js';
import { archFromHex, syscallName } from '../../src/audit/arch.js';
import { setUserDatabase, userName, groupName } from '../../src/audit/users.js';
import { fixtures } from '../helpers/env.js';

setUserDatabase(fixtures('passwd'), fixtures('group'));

function records(...lines: string[]): AuditRecord[] {
  return lines.map((l) => {
    const r = parseRecordLine(l);
    if ('error' in r) throw new Error(r.error);
    return r;
  });
}

const SYSCALL = (extra: string) =>
  `type=SYSCALL msg=audit(1700000000.007:42): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=1 ppid=1 pid=100 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm="x" exe="/usr/bin/x" ${extra}`;

t.test('long arguments: aN_len and aN[i] pieces over several EXECVE records, bytes joined', async (t) => {
  // "é" is C3 A9: split between two pieces on purpose
  const ev = interpret(
    records(
      SYSCALL('key="exec"'),
      'type=EXECVE msg=audit(1700000000.007:42): argc=3 a0="prog" a1_len=6 a1[0]=C3A9C3',
      'type=EXECVE msg=audit(1700000000.007:42): a1[1]=A941 a2="last arg"',
    ),
  ) as any;
  t.same(ev.process.args, ['prog', 'ééA', 'last arg']);
  t.equal(ev.process.args_count, 3);
  t.equal(ev.process.command_line, 'prog ééA last arg');
  t.equal(ev['@timestamp'], '2023-11-14T22:13:20.007Z');
});

t.test('arguments spread over several EXECVE records without splitting', async (t) => {
  const ev = interpret(
    records(
      SYSCALL('key=(null)'),
      'type=EXECVE msg=audit(1700000000.007:42): argc=4 a0="a" a1="b"',
      'type=EXECVE msg=audit(1700000000.007:42): a2=632064 a3="d"',
    ),
  ) as any;
  t.same(ev.process.args, ['a', 'b', 'c d', 'd']);
  t.equal(ev.tags, undefined, 'key=(null): no tags');
});

t.test('several rule keys become several tags; ENRICHED names win; unknown(N) is no name', async (t) => {
  const line = SYSCALL('key=6B31016B32') + '\x1dARCH=x86_64 SYSCALL=execve AUID="unknown(1000)" UID="wheel-root" GID="root" EUID="root" SUID="root" FSUID="root" EGID="root" SGID="root" FSGID="root"';
  const ev = interpret(records(line)) as any;
  t.same(ev.tags, ['k1', 'k2']);
  t.same(ev.user.audit, { id: '1000' }, 'unknown(1000) from auditd: no name');
  t.equal(ev.user.name, 'wheel-root', 'the ENRICHED name, not the host lookup');
  t.equal(ev.auditd.data.syscall, 'execve');
  t.equal(ev.auditd.records[0].fields.UID, 'wheel-root');
});

t.test('names resolved on the host when the log has none; auid unset', async (t) => {
  const ev = interpret(records(SYSCALL('key="k"').replace('auid=1000', 'auid=4294967295').replace('ses=3', 'ses=4294967295'))) as any;
  t.same(ev.user.audit, { id: '4294967295', name: 'unset' });
  t.equal(ev.auditd.session, 'unset');
  t.equal(ev.user.name, 'root');
  t.same(ev.user.effective, { id: '0', name: 'root', group: { id: '0', name: 'root' } });
  t.equal(ev.process.pid, 100);
  t.equal(ev.process.parent.pid, 1);
  t.same(Object.keys(ev.auditd.data), ['arch', 'syscall', 'success', 'exit', 'a0', 'a1', 'a2', 'a3', 'items', 'tty']);
});

t.test('failure, socket direction by syscall, relative PATH joined to CWD', async (t) => {
  const connect = interpret(
    records(
      'type=SYSCALL msg=audit(1700000000.100:7): arch=c000003e syscall=42 success=no exit=-111 a0=3 a1=7ff a2=10 a3=0 items=0 ppid=1 pid=5 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=1 comm="c" exe="/c" key="net"',
      'type=SOCKADDR msg=audit(1700000000.100:7): saddr=' + '0A00' + '0050' + '00000000' + '20010DB8000000000000000000000001' + '00000000',
    ),
  ) as any;
  t.equal(connect.event.outcome, 'failure');
  t.same(connect.destination, { address: '2001:db8::1', ip: '2001:db8::1', port: 80 });
  t.equal(connect.source, undefined);

  const accept = interpret(
    records(
      'type=SYSCALL msg=audit(1700000000.100:8): arch=c000003e syscall=43 success=yes exit=4 items=0 pid=5 uid=0 comm="s" exe="/s" key=(null)',
      'type=SOCKADDR msg=audit(1700000000.100:8): saddr=01002F72756E2F782E736F636B00',
    ),
  ) as any;
  t.same(accept.source, { address: '/run/x.sock' });
  t.same(accept.auditd.data.socket, { family: 'unix', path: '/run/x.sock', saddr: '01002F72756E2F782E736F636B00' });

  const open = interpret(
    records(
      'type=SYSCALL msg=audit(1700000000.100:9): arch=c000003e syscall=257 success=no exit=-13 items=2 pid=5 uid=1000 comm="cat" exe="/bin/cat" key="access"',
      'type=CWD msg=audit(1700000000.100:9): cwd=2F686F6D652F6120622F',
      'type=PATH msg=audit(1700000000.100:9): item=1 name="../etc/shadow" inode=9 dev=fe:00 mode=0100640 ouid=0 ogid=42 rdev=00:00 nametype=NORMAL',
      'type=PATH msg=audit(1700000000.100:9): item=0 name="/home/a b/" inode=8 dev=fe:00 mode=040755 ouid=0 ogid=0 rdev=00:00 nametype=PARENT',
    ),
  ) as any;
  t.equal(open.auditd.data.syscall, 'openat');
  t.equal(open.process.working_directory, '/home/a b/');
  t.same(open.auditd.paths.map((p: any) => p.item), ['0', '1'], 'paths in item order');
  t.same(open.file, { path: '/home/etc/shadow', inode: '9', device: 'fe:00', mode: '0640', uid: '0', owner: 'root', gid: '42', group: 'shadow' });
});

t.test('userspace records on their own; node= as host.name; problems reported, not thrown', async (t) => {
  const problems: string[] = [];
  const ev = interpret(
    records(
      "node=web-1 type=USER_AUTH msg=audit(1700000000.500:77): pid=9 uid=0 auid=1000 ses=2 msg='op=PAM:authentication grantors=? acct=\"bob\" exe=\"/usr/bin/sudo\" hostname=? addr=? terminal=/dev/pts/0 res=failed'",
    ),
    (m) => problems.push(m),
  ) as any;
  t.equal(ev.host.name, 'web-1');
  t.equal(ev.event.outcome, 'failure');
  t.equal(ev.process.executable, '/usr/bin/sudo');
  t.equal(ev.auditd.data.acct, 'bob');
  t.equal(ev.user.id, '0');
  t.same(problems, []);

  const bad = interpret(
    records(
      'type=SYSCALL msg=audit(1700000000.600:78): arch=c000003e syscall=1 success=yes exit=0 pid=1 uid=0 comm=ZZ key="k" exe="/x',
      'type=SOCKADDR msg=audit(1700000000.600:78): saddr=0200',
      'type=PROCTITLE msg=audit(1700000000.600:78): proctitle=6C73002D6C',
    ),
    (m) => problems.push(m),
  ) as any;
  t.equal(problems.length, 3, problems.join('; '));
  t.equal(bad.process.name, 'ZZ', 'the raw text kept');
  t.equal(bad.process.title, 'ls -l', 'NULs as spaces');
  t.equal(bad.auditd.data.socket, undefined);
});

t.test('a header time no Date can hold: reported, not thrown', async (t) => {
  const problems: string[] = [];
  const ev = interpret(records('type=EOE msg=audit(99999999999999999.000:1): '), (m) => problems.push(m)) as any;
  t.equal(ev['@timestamp'], '1970-01-01T00:00:00.000Z');
  t.equal(ev.event.id, '99999999999999999.000:1');
  t.equal(problems.length, 1);
});

t.test('sockaddr decoding', async (t) => {
  t.same(decodeSockaddr('020000357F000035'), { family: 'ipv4', addr: '127.0.0.53', port: 53 });
  t.same(decodeSockaddr('100000000000000000000000'), { family: 'netlink', pid: 0 });
  t.same(decodeSockaddr('010000736B6166652D6162737472616374'), { family: 'unix', path: '@skafe-abstract' });
  t.same(decodeSockaddr('0000'), { family: 'unspec' });
  t.equal(decodeSockaddr('02'), undefined);
  t.equal(decodeSockaddr('nothex'), undefined);
  const v6 = (hex: string) => ipv6ToText(Buffer.from(hex, 'hex'));
  t.equal(v6('00000000000000000000000000000001'), '::1');
  t.equal(v6('00000000000000000000000000000000'), '::');
  t.equal(v6('00000000000000000000FFFF7F000001'), '::ffff:127.0.0.1');
  t.equal(v6('20010DB8000000010000000000000001'), '2001:db8:0:1::1', 'longest zero run');
  t.equal(v6('20010DB8000000000001000000000001'), '2001:db8::1:0:0:1', 'first of equal runs');
  t.equal(v6('20010DB8000100010001000100010001'), '2001:db8:1:1:1:1:1:1');
  t.equal(v6('20010DB8000000010001000100010001'), '2001:db8:0:1:1:1:1:1', 'a single zero group stays');
  t.equal(v6('FE800000000000000000000000000000'), 'fe80::');
});

t.test('syscall tables and arch names', async (t) => {
  t.equal(archFromHex('c000003e')?.name, 'x86_64');
  t.equal(archFromHex('40000003')?.name, 'i386');
  t.equal(archFromHex('C00000B7')?.name, 'aarch64');
  t.equal(syscallName('c000003e', '59'), 'execve');
  t.equal(syscallName('40000003', '11'), 'execve');
  t.equal(syscallName('c00000b7', '221'), 'execve');
  t.equal(syscallName('c000003e', '99999'), undefined);
  t.equal(syscallName('deadbeef', '1'), undefined);
});

t.test('users database: read once, names by id, reloaded when it changes', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'skafe-users-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    setUserDatabase(fixtures('passwd'), fixtures('group'));
  });
  writeFileSync(path.join(dir, 'passwd'), '# comment\nroot:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\nbroken line\n');
  writeFileSync(path.join(dir, 'group'), 'root:x:0:\nstaff:x:50:alice\n');
  setUserDatabase(path.join(dir, 'passwd'), path.join(dir, 'group'));
  t.equal(userName('0'), 'root');
  t.equal(userName('1000'), 'alice', 'first entry wins, as getpwuid');
  t.equal(userName('1001'), undefined);
  t.equal(userName('4294967295'), 'unset');
  t.equal(groupName('50'), 'staff');
  t.equal(groupName('x'), undefined);
  setUserDatabase(path.join(dir, 'missing'), path.join(dir, 'missing'));
  t.equal(userName('0'), undefined, 'no database: no names, no throw');
});

t.test("skafe's own kernel-loss record becomes a metric event", async (t) => {
  const { parseRecordLine } = await import('../../src/audit/record.js');
  const { interpret } = await import('../../src/audit/interpret.js');
  const r = parseRecordLine('type=SKAFE_KERNEL_LOSS msg=audit(1700000000.000:0): kernel_lost=12 kernel_lost_total=40 serial_gap=0 receive_overflows=0 backlog=3');
  if ('error' in r) throw new Error(r.error);
  const e = interpret([r]) as any;
  t.equal(e.event.kind, 'metric');
  t.equal(e.event.action, 'kernel-loss');
  t.equal(e.auditd.records[0].fields.kernel_lost, '12');
});
