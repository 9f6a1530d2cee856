import fs from 'node:fs';
import path from 'node:path';
import { SkafeError, isSkafeError } from '../errors.js';
import { parseIni, type IniSection } from '../config/ini.js';
import { compilePattern, PatternError, type CompiledPattern, type RegexType } from './regex.js';
import { resolveKey } from './aliases.js';

// Loading a rules directory into a RuleSet: plain data (it crosses to worker
// threads), checked in full so a running server never meets a bad rule. Every
// problem is collected, then all are thrown at once in one SkafeError, so
// `skafe rules check` shows the whole list rather than one error per run.

export type Trigger = 'log' | 'alert' | 'both';
export type ScriptLang = 'js' | 'ruby' | 'python';

export interface MatchSpec {
  /** As written after `match_`. */
  key: string;
  /** ECS paths it reads (aliases resolved); first one present wins. */
  paths: string[];
  pattern: CompiledPattern;
  file: string;
  line: number;
}

export interface ScriptSpec {
  name: string;
  file: string;
  lang: ScriptLang;
}

export interface RuleNode {
  /** The section name as written: `MatchRule.test`. */
  name: string;
  /** The .rules file (absolute) and the line of its `[header]`. */
  file: string;
  line: number;
  action: 'match' | 'script';
  /** null: the node only gates its watchers. */
  trigger: Trigger | null;
  watch: string;
  matches: MatchSpec[];
  script?: ScriptSpec;
  /** Indexes of the nodes watching this one, in file order. */
  watchers: number[];
}

export interface Skipped {
  name: string;
  file: string;
  line: number;
  reason: string;
}

export interface RuleSet {
  rulesdir: string;
  scriptsdir: string;
  files: string[];
  nodes: RuleNode[];
  /** Nodes with `watch = base`. */
  roots: number[];
  /** Sections that are not rules (templates, no action, no parent): one server-log line each. */
  skipped: Skipped[];
  /** Harmless oddities: unknown keys, a `script` on a match rule. */
  warnings: string[];
}

export interface LoadIssue {
  file: string;
  line: number;
  rule?: string;
  message: string;
}

export interface LoadOptions {
  /** Where `script = NAME` looks for NAME.js/.mjs/.rb/.py. Default: the rules directory. */
  scriptsdir?: string;
}

const KNOWN_KEYS = new Set(['watch', 'action', 'trigger', 'regextype', 'script']);
const SCRIPT_EXTS: Array<[string, ScriptLang]> = [
  ['.js', 'js'],
  ['.mjs', 'js'],
  ['.rb', 'ruby'],
  ['.py', 'python'],
];

interface Section {
  name: string;
  file: string;
  line: number;
  keys: Map<string, { value: string; file: string; line: number }>;
}

export function loadRuleSet(rulesdir: string, opts: LoadOptions = {}): RuleSet {
  rulesdir = path.resolve(rulesdir);
  const scriptsdir = path.resolve(opts.scriptsdir ?? rulesdir);
  const issues: LoadIssue[] = [];
  const skipped: Skipped[] = [];
  const warnings: string[] = [];

  let entries: string[];
  try {
    if (!fs.statSync(rulesdir).isDirectory()) throw new Error('not a directory');
    entries = fs.readdirSync(rulesdir).filter((f) => f.endsWith('.rules')).sort();
  } catch (e) {
    throw new SkafeError('SKAFE_RULES_INVALID', `rules directory ${rulesdir} cannot be read: ${(e as Error).message}`, {
      file: rulesdir,
      errors: [{ file: rulesdir, line: 0, message: `cannot read directory: ${(e as Error).message}` }],
    });
  }
  const files = entries.map((f) => path.join(rulesdir, f));

  // Every section of every file, by name, in order of appearance.
  const sections = new Map<string, Section>();
  const order: Section[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      issues.push({ file, line: 0, message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
      continue;
    }
    let doc;
    try {
      doc = parseIni(text, file);
    } catch (e) {
      if (!isSkafeError(e)) throw e;
      issues.push({ file, line: e.details.line ?? 0, message: e.message.replace(`${file}:${e.details.line}: `, '') });
      continue;
    }
    for (const s of doc.sections) {
      if (s.name === '') {
        // Keys outside any section are not a rule (the original skipped its DEFAULT section).
        if (s.keys.length) warnings.push(`${file}:${s.keys[0]!.line}: keys outside any [section] are ignored`);
        continue;
      }
      const prev = sections.get(s.name);
      if (prev) {
        issues.push({ file, line: s.line, rule: s.name, message: `rule [${s.name}] is already defined at ${prev.file}:${prev.line}` });
        continue;
      }
      const sec = toSection(s, file);
      sections.set(s.name, sec);
      order.push(sec);
    }
  }

  // Inheritance: [A.B] starts from everything [A] has (itself inherited), its own keys win.
  const effective = new Map<string, Section | null>();
  const resolve = (sec: Section): Section | null => {
    if (effective.has(sec.name)) return effective.get(sec.name)!;
    const dot = sec.name.lastIndexOf('.');
    let result: Section | null = sec;
    if (dot > 0) {
      const parentName = sec.name.slice(0, dot);
      const parent = sections.get(parentName);
      const parentEff = parent ? resolve(parent) : null;
      if (!parentEff) {
        result = null;
        skipped.push({ name: sec.name, file: sec.file, line: sec.line, reason: `has no parent rule [${parentName}], skipping` });
      } else {
        result = { ...sec, keys: new Map([...parentEff.keys, ...sec.keys]) };
      }
    }
    effective.set(sec.name, result);
    return result;
  };

  const nodes: RuleNode[] = [];
  const index = new Map<string, number>();
  const templates = new Set<string>();
  for (const sec of order) {
    const eff = resolve(sec);
    if (!eff) continue;
    const where = (k: string) => eff.keys.get(k)!;
    const issue = (k: string | null, message: string) => {
      const at = k ? where(k) : { file: sec.file, line: sec.line };
      issues.push({ file: at.file, line: at.line, rule: sec.name, message });
    };
    for (const [k, v] of sec.keys) {
      if (!KNOWN_KEYS.has(k) && !k.startsWith('match_')) warnings.push(`${v.file}:${v.line}: [${sec.name}] unknown key "${k}" ignored`);
    }
    const watch = eff.keys.get('watch')?.value;
    if (watch === undefined || watch === '') {
      templates.add(sec.name);
      skipped.push({ name: sec.name, file: sec.file, line: sec.line, reason: 'has no watch, skipping' });
      continue;
    }
    const action = eff.keys.get('action')?.value;
    if (action === undefined || action === '') {
      skipped.push({ name: sec.name, file: sec.file, line: sec.line, reason: 'has no action, skipping' });
      continue;
    }
    const before = issues.length;
    if (action !== 'match' && action !== 'script') issue('action', `unknown action "${action}" (expected match or script)`);
    const triggerVal = eff.keys.get('trigger')?.value;
    let trigger: Trigger | null = null;
    if (triggerVal !== undefined && triggerVal !== '') {
      if (triggerVal === 'log' || triggerVal === 'alert' || triggerVal === 'both') trigger = triggerVal;
      else issue('trigger', `unknown trigger "${triggerVal}" (expected log, alert or both)`);
    }
    const rt = eff.keys.get('regextype')?.value ?? 'perl';
    let regextype: RegexType = 'perl';
    if (rt === 'perl' || rt === 'posix') regextype = rt;
    else issue('regextype', `unknown regextype "${rt}" (expected posix or perl)`);

    const matches: MatchSpec[] = [];
    for (const [k, v] of eff.keys) {
      if (!k.startsWith('match_')) continue;
      const key = k.slice(6);
      if (key === '' || /^\.|\.\.|\.$/.test(key)) {
        issue(k, `"${k}" does not name a key`);
        continue;
      }
      try {
        matches.push({ key, paths: resolveKey(key), pattern: compilePattern(v.value, regextype), file: v.file, line: v.line });
      } catch (e) {
        if (!(e instanceof PatternError)) throw e;
        issue(k, `bad ${regextype} regex /${v.value}/: ${e.message}`);
      }
    }

    let script: ScriptSpec | undefined;
    const scriptName = eff.keys.get('script')?.value;
    if (action === 'script') {
      if (!scriptName) issue(null, 'action = script needs a "script = NAME" key');
      else {
        const found = findScript(scriptsdir, scriptName);
        if (typeof found === 'string') issue('script', found);
        else script = found;
      }
      if (matches.length) warnings.push(`${sec.file}:${sec.line}: [${sec.name}] is a script rule: its match_ keys are ignored`);
    } else if (scriptName && action === 'match') {
      warnings.push(`${where('script').file}:${where('script').line}: [${sec.name}] is a match rule: "script" ignored`);
    }
    if (issues.length > before) continue;
    index.set(sec.name, nodes.length);
    nodes.push({
      name: sec.name,
      file: sec.file,
      line: sec.line,
      action: action as 'match' | 'script',
      trigger,
      watch,
      matches: action === 'script' ? [] : matches,
      ...(script ? { script } : {}),
      watchers: [],
    });
  }

  // Wire watchers; a watch must name `base` or a rule that runs.
  const roots: number[] = [];
  const named = new Set(order.map((s) => s.name));
  nodes.forEach((n, i) => {
    if (n.watch === 'base') return roots.push(i);
    const parent = index.get(n.watch);
    if (parent !== undefined) return nodes[parent]!.watchers.push(i);
    const w = effective.get(n.name)?.keys.get('watch');
    const why = templates.has(n.watch)
      ? `watches [${n.watch}], a template (no watch) that never runs`
      : named.has(n.watch)
        ? `watches [${n.watch}], which was skipped or is invalid`
        : `watches [${n.watch}], which does not exist`;
    issues.push({ file: w?.file ?? n.file, line: w?.line ?? n.line, rule: n.name, message: why });
  });

  // Each node watches exactly one thing, so a node not reached from base is on (or behind) a cycle.
  const reached = new Set<number>();
  const walk = (i: number) => {
    reached.add(i);
    for (const c of nodes[i]!.watchers) if (!reached.has(c)) walk(c);
  };
  roots.forEach(walk);
  const reported = new Set<number>();
  nodes.forEach((n, i) => {
    if (reached.has(i) || reported.has(i) || index.get(n.watch) === undefined) return;
    const chain: number[] = [];
    let j: number | undefined = i;
    while (j !== undefined && !chain.includes(j)) {
      chain.push(j);
      j = index.get(nodes[j]!.watch);
    }
    if (j === undefined || reported.has(j)) return;
    const cycle = chain.slice(chain.indexOf(j));
    cycle.forEach((c) => reported.add(c));
    const w = effective.get(nodes[j]!.name)?.keys.get('watch');
    issues.push({
      file: w?.file ?? nodes[j]!.file,
      line: w?.line ?? nodes[j]!.line,
      rule: nodes[j]!.name,
      message: `watch cycle: ${[...cycle, j].map((c) => `[${nodes[c]!.name}]`).join(' → ')}`,
    });
  });

  if (issues.length) {
    const lines = issues.map(formatIssue);
    throw new SkafeError('SKAFE_RULES_INVALID', `${issues.length} error${issues.length > 1 ? 's' : ''} in rules ${rulesdir}:\n  ${lines.join('\n  ')}`, {
      file: issues[0]!.file,
      line: issues[0]!.line,
      errors: issues,
    });
  }
  return { rulesdir, scriptsdir, files, nodes, roots, skipped, warnings };
}

export function formatIssue(i: LoadIssue): string {
  return `${i.file}:${i.line}: ${i.rule ? `[${i.rule}] ` : ''}${i.message}`;
}

function toSection(s: IniSection, file: string): Section {
  const keys = new Map<string, { value: string; file: string; line: number }>();
  for (const k of s.keys) keys.set(k.key, { value: k.value, file, line: k.line });
  return { name: s.name, file, line: s.line, keys };
}

function findScript(dir: string, name: string): ScriptSpec | string {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) return `script name "${name}" must be a plain file name without extension`;
  const found: ScriptSpec[] = [];
  for (const [ext, lang] of SCRIPT_EXTS) {
    const file = path.join(dir, name + ext);
    try {
      fs.accessSync(file, fs.constants.R_OK);
      found.push({ name, file, lang });
    } catch {
      /* not this one */
    }
  }
  if (found.length === 0) return `script "${name}" not found: no readable ${SCRIPT_EXTS.map(([e]) => name + e).join(', ')} in ${dir}`;
  if (found.length > 1) return `script "${name}" is ambiguous: ${found.map((f) => path.basename(f.file)).join(' and ')} in ${dir}`;
  return found[0]!;
}
