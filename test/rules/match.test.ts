import t from 'tap';
import { compilePattern, toRegExp } from '../../src/rules/regex.js';
import { loadRuleSet } from '../../src/rules/load.js';
import { RuleTree } from '../../src/rules/tree.js';
import { dirWith } from './helpers.js';

const re = (p: string, type: 'perl' | 'posix') => toRegExp(compilePattern(p, type));

t.test('posix ERE: bracket classes, literal backslash in brackets, no lazy quantifiers', async (t) => {
  t.ok(re('^[[:alpha:]]+$', 'posix').test('Tail'));
  t.notOk(re('^[[:alpha:]]+$', 'posix').test('tail2'));
  t.ok(re('^[[:digit:][:upper:]]+$', 'posix').test('A1'));
  t.ok(re('[[:space:]]', 'posix').test('a b'));
  t.ok(re('^[^[:punct:]]+$', 'posix').test('abc'));
  t.ok(re('[\\d]', 'posix').test('\\'), 'backslash is literal inside POSIX brackets');
  t.notOk(re('[\\d]', 'posix').test('5'));
  t.ok(re('^[]a]+$', 'posix').test(']a]'), '] first in brackets is literal');
  // `a+?` in ERE is (a+)?: with anchors it must still match the whole run, unlike a lazy quantifier.
  t.ok(re('^x(a+?)$', 'posix').test('xaaa'));
  t.ok(re('^a{2,3}$', 'posix').test('aaa'));
  t.ok(re('a{b', 'posix').test('a{b'), 'a { that is no bound is literal');
  t.ok(re('^exec[a-z]+$', 'posix').test('execve'));
  t.throws(() => compilePattern('(?=x)y', 'posix'), { name: 'PatternError' }, 'no look-around in ERE');
  t.throws(() => compilePattern('(a)\\1', 'posix'), { name: 'PatternError' }, 'no backreferences in ERE');
  t.throws(() => compilePattern('[[:nope:]]', 'posix'), /unknown character class/);
  t.throws(() => compilePattern('(a', 'posix'), /unmatched/);
});

t.test('perl: JavaScript/RE2 syntax, posix classes and inline flags', async (t) => {
  t.ok(re('^/usr/s?bin/\\w+$', 'perl').test('/usr/bin/tail'));
  t.ok(re('[[:alpha:]]+', 'perl').test('abc'));
  t.ok(re('(?i)^ROOT$', 'perl').test('root'));
  t.ok(re('a.*?b', 'perl').test('axxb'), 'lazy quantifiers are fine in perl');
  t.throws(() => compilePattern('(?<!a)b', 'perl'), /linear time/, 'look-behind rejected at load');
  t.throws(() => compilePattern('(x)\\1', 'perl'), /linear time/, 'backreference rejected at load');
  t.throws(() => compilePattern('[a-', 'perl'), { name: 'PatternError' });
  t.ok(re('(?i)^R[o-p]{2}T$', 'perl').test('rOoT'), 'case folding works without the i flag');
  t.notOk(re('(?i)(a+)+$', 'perl').test('A'.repeat(5000) + '!'), 'and keeps the ReDoS guard');
});

t.test('a ReDoS pattern cannot stall matching', async (t) => {
  for (const type of ['perl', 'posix'] as const) {
    const r = re('(a+)+$', type);
    const evil = 'a'.repeat(5000) + '!';
    const start = process.hrtime.bigint();
    t.notOk(r.test(evil));
    t.notOk(re('^(a|aa)*c$', type).test('a'.repeat(200)));
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    // Backtracking would take longer than the age of the universe; the linear fallback takes milliseconds.
    t.ok(ms < 2000, `${type}: ${ms.toFixed(1)} ms`);
  }
  // And through a loaded rule, on the worker-free path.
  const set = loadRuleSet(dirWith({ 'r.rules': '[evil]\nwatch = base\naction = match\ntrigger = log\nmatch_cmd = (a+)+$\n' }));
  const start = Date.now();
  t.same(new RuleTree(set).evaluateSync({ process: { command_line: 'a'.repeat(100000) + '!' } }), []);
  t.ok(Date.now() - start < 2000, 'rule with a ReDoS pattern evaluates quickly');
});

t.test('keys: dotted paths, arrays, numbers, aliases, missing keys, AND', async (t) => {
  const set = loadRuleSet(
    dirWith({
      'k.rules': [
        '[dotted]\nwatch = base\naction = match\ntrigger = log\nmatch_process.executable = ^/usr/bin/tail$\n',
        '[array]\nwatch = base\naction = match\ntrigger = log\nmatch_tags = ^exec$\n',
        '[number]\nwatch = base\naction = match\ntrigger = log\nmatch_process.pid = ^8433$\n',
        '[alias]\nwatch = base\naction = match\ntrigger = log\nregextype = posix\nmatch_uname = ^root$\nmatch_uid = ^0$\nmatch_bin = tail$\nmatch_a1 = ^/etc/passwd$\nmatch_argc = ^2$\nmatch_cmd = ^tail /etc/passwd$\nmatch_ses = ^5$\nmatch_ppid = ^1$\nmatch_key = ^exec$\nmatch_syscall = ^execve$\nmatch_cwd = ^/root$\nmatch_comm = ^tail$\n',
        '[and]\nwatch = base\naction = match\ntrigger = log\nmatch_uname = ^root$\nmatch_comm = ^ls$\n',
        '[missing]\nwatch = base\naction = match\ntrigger = log\nmatch_file.path = .*\n',
        '[fanout]\nwatch = base\naction = match\ntrigger = log\nmatch_auditd.paths.name = ^/etc/passwd$\n',
      ].join(''),
    }),
  );
  const event = {
    process: { pid: 8433, parent: { pid: 1 }, name: 'tail', executable: '/usr/bin/tail', args: ['tail', '/etc/passwd'], args_count: 2, working_directory: '/root' },
    user: { id: '0', name: 'root' },
    tags: ['identity', 'exec'],
    auditd: { session: '5', data: { syscall: 'execve' }, paths: [{ name: '/usr/bin/tail' }, { name: '/etc/passwd' }] },
  };
  const fired = new RuleTree(set).evaluateSync(event).map((i) => set.nodes[i]!.name);
  t.same(fired, ['dotted', 'array', 'number', 'alias', 'fanout']);
});

t.test('regex outcomes remembered per key value give the answers the regexes give', async (t) => {
  // bin and process.executable read the same values, so they share a memo; more distinct values
  // than the memo holds, values longer than it keeps, and a stretch of values that never repeat
  // (which turns it off for a while) must all answer as the regex does.
  const set = loadRuleSet(
    dirWith({
      'm.rules': [
        '[even]\nwatch = base\naction = match\ntrigger = log\nmatch_bin = [02468]$\n',
        '[evenflat]\nwatch = base\naction = match\ntrigger = log\nmatch_process.executable = [02468]$\n',
        '[x]\nwatch = even\naction = match\ntrigger = alert\nregextype = posix\nmatch_exe = ^/x[[:digit:]]+\n',
        '[long]\nwatch = base\naction = match\ntrigger = log\nmatch_uname = ^a+$\n',
      ].join(''),
    }),
  );
  const tree = new RuleTree(set);
  const name = (i: number) => set.nodes[i]!.name;
  let wrong = 0;
  const check = (exe: string, user: string) => {
    const even = /[02468]$/.test(exe);
    const want = [...(even ? ['even', 'x'].filter((n) => n !== 'x' || /^\/x\d+/.test(exe)) : []), ...(even ? ['evenflat'] : []), ...(/^a+$/.test(user) ? ['long'] : [])];
    const got = tree.evaluateSync({ process: { executable: exe }, user: { name: user } }).map(name);
    if (JSON.stringify(got) !== JSON.stringify(want) && wrong++ < 3) t.comment(`${exe} ${user.length}: ${got} ≠ ${want}`);
  };
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 3000; i++) check(`/x${i % 700}`, i % 2 ? 'a'.repeat(250) : i % 3 ? 'a'.repeat(249) + 'b' : 'a'.repeat(50));
    for (let i = 0; i < 20000; i++) check(`/y/${round}-${i}`, 'b');
    for (let i = 0; i < 3000; i++) check(i % 3 ? `/x${i % 9}` : `/z${i}`, i % 5 ? 'a'.repeat(20) : 'ab');
  }
  t.equal(wrong, 0, 'every event fires what the regexes say');
});
