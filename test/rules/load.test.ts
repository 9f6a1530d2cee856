import t, { type Test } from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { loadRuleSet, type LoadIssue } from '../../src/rules/load.js';
import { RuleTree } from '../../src/rules/tree.js';
import { isSkafeError } from '../../src/errors.js';
import { repoRoot } from '../helpers/env.js';
import { dirWith } from './helpers.js';

const names = (dir: string) => loadRuleSet(dir).nodes.map((n) => n.name);

/** The issues a broken rules dir produces (asserting it is refused). */
function issues(t: Test, files: Record<string, string>): LoadIssue[] {
  const dir = dirWith(files);
  try {
    loadRuleSet(dir);
  } catch (e) {
    t.ok(isSkafeError(e, 'SKAFE_RULES_INVALID'), 'SKAFE_RULES_INVALID');
    return (e as { details: { errors: LoadIssue[] } }).details.errors;
  }
  t.fail('loaded a broken rule set');
  return [];
}

t.test('the original report example: templates skipped, five rules, inheritance', async (t) => {
  const set = loadRuleSet(path.join(repoRoot, 'pipelines/rules/example'));
  t.same(set.nodes.map((n) => n.name), ['MatchRule.test', 'MatchRule.test2', 'MatchRule.test3', 'MatchRule.test4', 'catchall']);
  t.same(set.skipped.map((s) => `Rule [${s.name}] ${s.reason}`), ['Rule [MatchRule] has no watch, skipping', 'Rule [ScriptRule] has no watch, skipping']);
  const t3 = set.nodes[2]!;
  t.equal(t3.action, 'match', 'action inherited from [MatchRule]');
  t.equal(t3.trigger, 'log', 'trigger inherited');
  t.equal(t3.matches[0]!.pattern.type, 'posix', 'regextype inherited');
  t.same(set.nodes[0]!.watchers, [2, 3], 'test3 and test4 watch MatchRule.test');
  const tree = new RuleTree(set);
  t.same(tree.evaluateSync({ tags: ['execve'] }).map((i) => set.nodes[i]!.name), ['MatchRule.test', 'MatchRule.test3', 'catchall']);
  t.same(tree.evaluateSync({ tags: ['execve'], data: 'a llama' }).map((i) => set.nodes[i]!.name), ['MatchRule.test', 'MatchRule.test3', 'MatchRule.test4', 'catchall'], 'AND of key and data');
  t.same(tree.evaluateSync({}).map((i) => set.nodes[i]!.name), ['catchall'], 'missing keys fail');
});

t.test('the demo rules load as three base rules', async (t) => {
  const set = loadRuleSet(path.join(repoRoot, 'pipelines/rules/demo'));
  t.same(set.nodes.map((n) => `${n.name}:${n.action}:${n.watch}`), ['catchall:match:base', 'rootactivity:match:base', 'tailsript:script:base']);
  t.equal(set.nodes[2]!.script!.lang, 'ruby');
});

t.test('inheritance: child overrides, grandchild inherits through', async (t) => {
  const dir = dirWith({
    'a.rules': '[A]\naction = match\ntrigger = alert\nmatch_uname = ^root$\n[A.B]\nwatch = base\ntrigger = both\n[A.B.C]\nmatch_uname = ^bob$\n',
  });
  const set = loadRuleSet(dir);
  t.same(set.nodes.map((n) => [n.name, n.trigger, n.watch, n.matches.map((m) => m.pattern.pattern)]), [
    ['A.B', 'both', 'base', ['^root$']],
    ['A.B.C', 'both', 'base', ['^bob$']],
  ]);
  t.same(set.skipped.map((s) => s.name), ['A']);
  t.same(names(dirWith({ 'x.rules': '[Nope.kid]\nwatch = base\naction = match\n' })), [], 'a rule whose parent section is missing is skipped');
});

t.test('errors name file, line and rule', async (t) => {
  const cases: Array<[string, string, RegExp, number]> = [
    ['unknown action', '[r]\nwatch = base\naction = guess\n', /unknown action "guess"/, 3],
    ['unknown trigger', '[r]\nwatch = base\naction = match\ntrigger = page\n', /unknown trigger "page"/, 4],
    ['bad regex', '[r]\nwatch = base\naction = match\nmatch_uname = (unclosed\n', /bad perl regex/, 4],
    ['unknown regextype', '[r]\nwatch = base\naction = match\nregextype = pcre\n', /unknown regextype "pcre"/, 4],
    ['watch on a missing rule', '[r]\nwatch = nothere\naction = match\n', /watches \[nothere\], which does not exist/, 2],
    ['script without name', '[r]\nwatch = base\naction = script\n', /needs a "script = NAME"/, 1],
    ['script not found', '[r]\nwatch = base\naction = script\nscript = nope\n', /script "nope" not found/, 4],
  ];
  for (const [what, text, re, line] of cases) {
    const [i] = issues(t, { 'bad.rules': text });
    t.match(i?.message, re, what);
    t.equal(i?.line, line, `${what}: line`);
    t.equal(i?.rule, 'r', `${what}: rule`);
    t.match(i?.file, /bad\.rules$/, `${what}: file`);
  }
  const cyc = issues(t, { 'c.rules': '[a]\nwatch = b\naction = match\n[b]\nwatch = a\naction = match\n[ok]\nwatch = base\naction = match\n' });
  t.equal(cyc.length, 1);
  t.match(cyc[0]!.message, /watch cycle: \[a\] → \[b\] → \[a\]/);
  const tmpl = issues(t, { 't.rules': '[T]\naction = match\n[r]\nwatch = T\naction = match\n' });
  t.match(tmpl[0]!.message, /template/);
  const dup = issues(t, { 'a.rules': '[r]\nwatch = base\naction = match\n', 'b.rules': '\n[r]\nwatch = base\naction = match\n' });
  t.match(dup[0]!.message, /already defined at .*a\.rules:1/);
  t.equal(dup[0]!.line, 2);
  const syntax = issues(t, { 's.rules': '[r\nwatch = base\n' });
  t.match(syntax[0]!.message, /no closing/);
  t.equal(syntax[0]!.line, 1);
  // All problems in one go.
  const many = issues(t, { 'm.rules': '[a]\nwatch = base\naction = x\n[b]\nwatch = base\naction = match\ntrigger = y\n' });
  t.equal(many.length, 2, 'every error is reported, not just the first');
});

t.test('unreadable file and missing directory', async (t) => {
  const dir = dirWith({ 'r.rules': '[r]\nwatch = base\naction = match\n' });
  if (process.getuid?.() === 0) {
    // root reads anything: a directory named *.rules stands in for an unreadable file.
    fs.mkdirSync(path.join(dir, 'd.rules'));
  } else fs.chmodSync(path.join(dir, 'r.rules'), 0);
  t.throws(() => loadRuleSet(dir), { code: 'SKAFE_RULES_INVALID', message: /cannot read/ });
  t.throws(() => loadRuleSet(path.join(dir, 'nope')), { code: 'SKAFE_RULES_INVALID', message: /cannot be read/ });
});

t.test('comments, quotes, gating nodes and unknown keys', async (t) => {
  const dir = dirWith({
    'g.rules': '# hash comment\n; semicolon comment\n[gate]\nwatch = base\naction = match\nmatch_comm = ^sh$\ncolour = blue\n[leaf]\nwatch = gate\naction = match\ntrigger = alert\n',
  });
  const set = loadRuleSet(dir);
  t.equal(set.nodes[0]!.trigger, null, 'no trigger: the node only gates');
  t.match(set.warnings.join('\n'), /unknown key "colour"/);
  const tree = new RuleTree(set);
  t.same(tree.evaluateSync({ process: { name: 'sh' } }), [1], 'gate passes, only the leaf fires');
  t.same(tree.evaluateSync({ process: { name: 'bash' } }), [], 'gate fails, leaf never runs');
});
