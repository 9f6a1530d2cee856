// The field scanner on the value forms the kernel and auditd write, on
// malformed text (never throws, counts problems), and with its layout
// prediction and generated factories (same result as the plain path).
import t from 'tap';
import { readFileSync } from 'node:fs';
import { scanFields, FieldShape, lastProblemCount, lastScanWasExact, UNPARSED } from '../../src/audit/fields.js';
import { parseRecordLine } from '../../src/audit/record.js';
import { fixtures } from '../helpers/env.js';

function scan(body: string, opts: { enriched?: string; execve?: boolean; shape?: FieldShape } = {}) {
  const problems: string[] = [];
  const fields = scanFields(body, opts.enriched, opts.execve ?? false, opts.shape ?? new FieldShape(), (m) => problems.push(m));
  return { fields, problems };
}

t.test('quoted, hex, literal and plain values', async (t) => {
  const { fields, problems } = scan(
    'arch=c000003e syscall=59 a0=7ffd items=2 tty=(none) comm="my cmd" exe=2F746D702F6120622F78 key=(null) name=?',
  );
  t.same(fields, { arch: 'c000003e', syscall: '59', a0: '7ffd', items: '2', tty: '(none)', comm: 'my cmd', exe: '/tmp/a b/x', key: '(null)', name: '?' });
  t.same(problems, []);
});

t.test('EXECVE arguments are hex-capable, argc and aN_len are not', async (t) => {
  const { fields } = scan('argc=3 a0="ls" a1=2D6C2061 a2_len=4 a2[0]=41424344 a3=414243', { execve: true });
  t.same(fields, { argc: '3', a0: 'ls', a1: '-l a', a2_len: '4', 'a2[0]': 'ABCD', a3: 'ABC' });
  // outside EXECVE an aN value is a syscall argument: hex text, not hex-encoded
  t.equal(scan('a1=414243').fields.a1, '414243');
});

t.test('saddr stays hex (binary), proctitle keeps its NULs', async (t) => {
  const { fields } = scan('saddr=020000357F000035 proctitle=6C73002D6C');
  t.equal(fields.saddr, '020000357F000035');
  t.equal(fields.proctitle, 'ls\0-l');
});

t.test("userspace msg='…' is scanned into the record's fields, bare words kept", async (t) => {
  const { fields, problems } = scan(
    "pid=7330 uid=0 auid=4294967295 ses=4294967295 msg='op=adding group acct=\"carol\" exe=\"/usr/sbin/useradd\" hostname=? addr=? terminal=? res=success'",
  );
  t.same(fields, {
    pid: '7330', uid: '0', auid: '4294967295', ses: '4294967295',
    op: 'adding group', acct: 'carol', exe: '/usr/sbin/useradd', hostname: '?', addr: '?', terminal: '?', res: 'success',
  });
  t.same(problems, []);
});

t.test('ENRICHED part joins the same object, braces hold spaces', async (t) => {
  const { fields } = scan('saddr=0A00', { enriched: 'SADDR={ saddr_fam=inet6 laddr=::1 lport=80 } UID="root"' });
  t.same(fields, { saddr: '0A00', SADDR: '{ saddr_fam=inet6 laddr=::1 lport=80 }', UID: 'root' });
});

t.test('a key of several rule keys (\\x01-joined, hex)', async (t) => {
  t.equal(scan('key=6D6B2D6F6E65016D6B2D74776F').fields.key, 'mk-one\x01mk-two');
});

t.test('repeated names and __proto__ lose nothing and touch no prototype', async (t) => {
  const { fields } = scan('uid=1 uid=2 uid=3 __proto__=x');
  t.same(Object.keys(fields), ['uid', 'uid_2', 'uid_3', '__proto___2']);
  t.equal(fields.uid_3, '3');
  t.equal(Object.getPrototypeOf(fields), Object.prototype);
  t.equal(({} as any).x, undefined);
});

t.test('text before any name=value is kept as unparsed', async (t) => {
  const { fields } = scan('avc:  denied  { read } for pid=1 comm="x"');
  t.equal(fields[UNPARSED], 'avc: denied { read } for');
  t.equal(fields.pid, '1');
});

t.test('malformed values: kept as written, counted, never thrown', async (t) => {
  let r = scan('pid=1 comm="unterminated exe');
  t.equal(r.problems.length, 1);
  t.match(r.problems[0], /comm: unterminated double quote/);
  t.same(r.fields, { pid: '1', comm: '"unterminated exe' });

  r = scan('exe=4142G4 name=414 cwd=/not/hex');
  t.equal(r.problems.length, 3, 'bad hex, odd length, unquoted non-hex path');
  t.same(r.fields, { exe: '4142G4', name: '414', cwd: '/not/hex' });
  t.equal(lastProblemCount(), 3);

  r = scan("msg='op=x res=success");
  t.equal(r.problems.length, 1);
  t.equal(r.fields.res, 'success');

  r = scan('SADDR={ saddr_fam=inet');
  t.equal(r.problems.length, 1);
  t.equal(r.fields.SADDR, '{ saddr_fam=inet');

  // fuzz: truncations and injected quotes of real records never throw
  const lines = readFileSync(fixtures('dev-2', 'audit.log'), 'utf8').split('\n').filter(Boolean).slice(0, 400);
  const shape = new FieldShape();
  let n = 0;
  let seed = 42;
  const rnd = (m: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % m);
  for (const line of lines) {
    const rec = parseRecordLine(line);
    if ('error' in rec) continue;
    for (let k = 0; k < 5; k++) {
      let body = rec.body;
      const at = rnd(body.length + 1);
      const op = rnd(4);
      if (op === 0) body = body.slice(0, at);
      else if (op === 1) body = body.slice(0, at) + '"' + body.slice(at);
      else if (op === 2) body = body.slice(0, at) + "'" + body.slice(at);
      else body = body.slice(0, at) + '= =' + body.slice(at);
      t.doesNotThrow(() => scanFields(body, rec.enriched, rec.type === 'EXECVE', shape, () => {}));
      n++;
    }
  }
  t.ok(n > 1000, `${n} mutated records scanned`);
});

t.test('layout prediction and generated factories give the plain result', async (t) => {
  const lines = readFileSync(fixtures('dev-1', 'audit.log'), 'utf8').split('\n').filter(Boolean);
  const shapes = new Map<string, FieldShape>();
  let exact = 0;
  let compared = 0;
  for (let rep = 0; rep < 2; rep++) {
    for (const line of lines) {
      const rec = parseRecordLine(line);
      if ('error' in rec) continue;
      let shape = shapes.get(rec.type);
      if (!shape) shapes.set(rec.type, (shape = new FieldShape()));
      const fast = scanFields(rec.body, rec.enriched, rec.type === 'EXECVE', shape);
      if (lastScanWasExact()) exact++;
      const plain = scanFields(rec.body, rec.enriched, rec.type === 'EXECVE', new FieldShape());
      compared++;
      if (JSON.stringify(fast) !== JSON.stringify(plain)) {
        t.fail(`differs: ${line.slice(0, 120)}`);
        return;
      }
    }
  }
  t.ok(exact > compared * 0.8, `${exact}/${compared} records matched their remembered layout`);
  t.ok([...shapes.values()].some((s) => s.factory !== undefined), 'some layouts got a generated factory');
  // a layout change after the factory exists: the new fields are not lost
  const shape = new FieldShape();
  for (let i = 0; i < 20; i++) scanFields('a=1 b=2 c=3', undefined, false, shape);
  t.ok(shape.factory, 'factory compiled');
  t.same(scanFields('a=1 b=2 c=3 d=4', undefined, false, shape), { a: '1', b: '2', c: '3', d: '4' });
  t.same(scanFields('a=1 c=3', undefined, false, shape), { a: '1', c: '3' });
  t.same(scanFields('a=1 b=2 c=3', undefined, false, shape), { a: '1', b: '2', c: '3' });
  // msg='…' layouts
  const user = new FieldShape();
  for (let i = 0; i < 20; i++) {
    t.same(scanFields(`pid=${i} msg='op=x${i} res=success'`, undefined, false, user), { pid: String(i), op: `x${i}`, res: 'success' });
  }
  t.ok(user.factory, 'msg= layouts get a factory too');
  t.same(scanFields('pid=1 msg=plain res=1', undefined, false, user), { pid: '1', msg: 'plain', res: '1' });
});
