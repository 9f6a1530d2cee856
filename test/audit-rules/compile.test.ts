import t from 'tap';
import { compileRules } from '../../src/audit/rules/compile.js';
import { formatRule } from '../../src/audit/rules/format.js';
import { isSkafeError } from '../../src/errors.js';
import { F, OPS, RULE_HEADER_BYTES } from '../../src/audit/rules/tables.js';

// struct audit_rule_data offsets, in u32 words
const u = (b: Buffer, i: number) => b.readUInt32LE(i * 4);
const FIELD = (i: number) => 3 + 64 + i;
const VALUE = (i: number) => 3 + 128 + i;
const FLAG = (i: number) => 3 + 192 + i;
const MASK = (w: number) => 3 + w;

const one = (line: string) => compileRules(line + '\n').rules[0]!.data;

t.test('syscall rule with arch, fields and key', async (t) => {
  const b = one('-a always,exit -F arch=b64 -S execve,59 -F auid>=1000 -F auid!=unset -F exit=-EACCES -k exec');
  t.equal(u(b, 0), 4, 'exit list');
  t.equal(u(b, 1), 2, 'always');
  t.equal(u(b, 2), 5, 'arch, auid, auid, exit and the key');
  t.equal(u(b, MASK(1)), 1 << (59 - 32), 'execve (59) bit');
  t.equal(u(b, FIELD(0)), F.arch);
  t.equal(u(b, VALUE(0)), 0xc000003e, 'b64 = AUDIT_ARCH_X86_64 here');
  t.equal(u(b, FIELD(1)), F.loginuid);
  t.equal(u(b, FLAG(1)), OPS['>=']);
  t.equal(u(b, VALUE(2)), 0xffffffff, 'unset');
  t.equal(u(b, FLAG(2)), OPS['!=']);
  t.equal(b.readInt32LE(VALUE(3) * 4), -13, 'exit=-EACCES');
  t.equal(b.length, RULE_HEADER_BYTES + 4, 'key text after the header');
});

t.test('keys: -k goes last, several join with \\x01', async (t) => {
  const b = one('-a always,exit -S open -k one -F uid=0 -k two');
  t.equal(u(b, FIELD(0)), F.uid);
  t.equal(u(b, FIELD(1)), F.key);
  t.equal(b.subarray(RULE_HEADER_BYTES).toString(), 'one\x01two');
});

t.test('numbers parse like strtol base 0', async (t) => {
  t.equal(u(one('-a always,exit -S open -F a2&0100'), VALUE(0)), 0o100, 'octal');
  t.equal(u(one('-a always,exit -S open -F a0=0x4'), VALUE(0)), 4, 'hex');
});

t.test('watches: file, directory, permissions', async (t) => {
  const f = one('-w /etc/passwd -p wa -k identity');
  t.equal(u(f, FIELD(0)), F.path, 'a file is a path= watch');
  t.equal(u(f, FIELD(1)), F.perm);
  t.equal(u(f, VALUE(1)), 2 | 8, 'w|a');
  t.equal(u(f, MASK(0)), 0xffffffff, 'all syscalls');
  const d = one('-w /etc/ -p r');
  t.equal(u(d, FIELD(0)), F.dir, 'a directory is a dir= watch');
  t.equal(d.subarray(RULE_HEADER_BYTES).toString(), '/etc', 'trailing slash trimmed');
  t.equal(formatRule(f), '-w /etc/passwd -p wa -k identity', 'formats back');
});

t.test('controls', async (t) => {
  const s = compileRules('-D\n-b 8192\n-f 1\n--backlog_wait_time 60000\n-r 0\n-e 1\n');
  t.same(s.controls, { deleteAll: true, backlogLimit: 8192, failure: 1, backlogWaitTime: 60000, rateLimit: 0, enabled: 1, continueOnError: false });
  t.equal(s.rules.length, 0);
});

t.test('bad input: first bad line, its number and reason, nothing loaded', async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ['-a always,exit -S execve\n-f 2\n', 2, /failure mode 2/],
    ['-e 2\n', 1, /-e 2 .*refused/],
    ['# c\n\n-a always,exit -S nosuch\n', 3, /-S nosuch: no such syscall on x86_64/],
    ['-a always,exit -F frob=1\n', 1, /unknown field "frob"/],
    ['-a always,exit -F uid~1\n', 1, /no operator/],
    ['-a always,exit -F exit=-EBOGUS\n', 1, /unknown errno/],
    ['-a always,entry -S open\n', 1, /entry list is deprecated/],
    ['-a always,task -S open\n', 1, /only valid on the exit/],
    ['-w etc/passwd\n', 1, /must be absolute/],
    ['-a always,exit -F arch=b64 -S open -F path=/x -F path=/y -F path=/z -p rwxq\n', 1, /only r, w, x and a/],
    ['-x\n', 1, /unknown option/],
    ['-a always,exit -S open -F key!=k\n', 1, /key takes only =/],
  ];
  for (const [text, line, re] of cases) {
    try {
      compileRules(text, 'f.rules');
      t.fail(`accepted: ${JSON.stringify(text)}`);
    } catch (e) {
      t.ok(isSkafeError(e, 'SKAFE_AUDIT_RULE'), 'SKAFE_AUDIT_RULE');
      t.equal((e as { details: { line: number } }).details.line, line, `line ${line}`);
      t.match((e as Error).message, re);
      t.match((e as Error).message, new RegExp(`^f\\.rules:${line}: `), 'message starts with file:line');
    }
  }
});

t.test('arch before -S picks the syscall table', async (t) => {
  const b32 = one('-a always,exit -F arch=b32 -S execve');
  t.equal(u(b32, MASK(0)), 1 << 11, 'execve is 11 on i386');
  t.equal(formatRule(b32), '-a always,exit -F arch=b32 -S execve');
});
