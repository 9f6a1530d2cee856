import v8 from 'node:v8';

// Catastrophic backtracking policy (docs/rules.md, "Regular expressions"):
//
// Every pattern must be one that V8's linear-time engine accepts: that is
// checked at load by compiling it with the `l` flag, and a pattern that needs a
// backtracking-only feature (backreferences, look-around) is rejected with an
// error naming the file, line and rule. The original SKAFE compiled `perl`
// patterns with Go's RE2-syntax `regexp`, which has neither feature, so no
// original rule loses anything. At match time the pattern runs on the normal
// (JIT-compiled, fast) engine, and V8 switches a match over to the linear engine
// once it has backtracked too often. So `(a+)+$` against `aaaa…!` costs
// microseconds, never minutes, and ordinary patterns keep full speed.
//
// V8 flags are process-wide (worker threads share them) and must be set before
// the first affected RegExp is built; importing this module does it.
v8.setFlagsFromString('--enable-experimental-regexp-engine');
v8.setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

export type RegexType = 'perl' | 'posix';

/** A checked pattern in JavaScript syntax: plain data, so it crosses to worker threads. */
export interface CompiledPattern {
  /** The pattern as written in the .rules file. */
  pattern: string;
  type: RegexType;
  source: string;
  flags: string;
}

export class PatternError extends Error {
  override name = 'PatternError';
}

// POSIX bracket classes, valid inside [...] in both flavours (RE2 accepts them
// in its Perl syntax too). ASCII, as in the C locale auditd logs are written in.
const POSIX_CLASSES: Record<string, string> = {
  alpha: 'a-zA-Z',
  digit: '0-9',
  alnum: '0-9a-zA-Z',
  upper: 'A-Z',
  lower: 'a-z',
  space: ' \\t\\n\\r\\f\\v',
  blank: ' \\t',
  punct: '!-\\/:-@\\[-`{-~',
  print: ' -~',
  graph: '!-~',
  cntrl: '\\x00-\\x1f\\x7f',
  xdigit: '0-9A-Fa-f',
  word: '0-9A-Za-z_',
};

/** Compile a rule pattern once, at load. Throws PatternError with a reason a user can act on. */
export function compilePattern(pattern: string, type: RegexType): CompiledPattern {
  let source: string;
  let flags = '';
  if (type === 'posix') {
    source = translatePosix(pattern);
  } else {
    // RE2's leading inline flags `(?i)`, `(?s)`, `(?m)`, `(?is)`…: JavaScript has them as flags.
    const m = /^\(\?([ism]+)\)/.exec(pattern);
    let rest = pattern;
    if (m) {
      flags = [...new Set(m[1]!.split(''))].join('');
      rest = pattern.slice(m[0].length);
    }
    source = translatePerl(rest);
    // The linear engine has no `i` flag: spell case-insensitivity out as classes instead.
    if (flags.includes('i')) {
      source = foldCase(source);
      flags = flags.replace('i', '');
    }
  }
  try {
    // The linear engine's acceptance is the proof the pattern cannot backtrack catastrophically.
    new RegExp(source, flags + 'l');
  } catch (e) {
    const msg = (e as Error).message;
    if (/linear time/.test(msg)) {
      throw new PatternError('uses a feature that needs backtracking (backreference or look-around); rules allow only patterns that run in linear time');
    }
    throw new PatternError(msg.replace(/^Invalid regular expression: /, ''));
  }
  return { pattern, type, source, flags };
}

export function toRegExp(p: CompiledPattern): RegExp {
  return new RegExp(p.source, p.flags);
}

/** Perl (RE2) syntax is JavaScript's except for POSIX classes inside brackets and `\z`/`\A`. */
function translatePerl(p: string): string {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) throw new PatternError('trailing backslash');
      if (n === 'A') out += '^';
      else if (n === 'z') out += '$';
      else out += c + n;
      i++;
    } else if (c === '[') {
      const [cls, end] = bracket(p, i, 'perl');
      out += cls;
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

/**
 * POSIX ERE → JavaScript. Only whether a pattern matches matters to a rule, so
 * POSIX's leftmost-longest rule needs no emulation. ERE has no lazy
 * quantifiers: `a*?` means `(a*)?`. It has no `(?…)` groups and no
 * backreferences; those are errors. A backslash inside brackets is literal.
 */
function translatePosix(p: string): string {
  let out = '';
  // Where the last atom started in `out`, so a second quantifier can wrap it.
  let atomStart = -1;
  let quantified = false;
  const groupStarts: number[] = [];
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!;
    const isQuant = c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d+(,\d*)?\}/.test(p.slice(i)));
    if (isQuant) {
      if (atomStart < 0) throw new PatternError(`quantifier "${c}" at offset ${i} has nothing to repeat`);
      let q = c;
      if (c === '{') {
        const m = /^\{\d+(,\d*)?\}/.exec(p.slice(i))!;
        q = m[0];
        i += q.length - 1;
      }
      if (quantified) out = out.slice(0, atomStart) + '(?:' + out.slice(atomStart) + ')';
      out += q;
      quantified = true;
      continue;
    }
    quantified = false;
    if (c === '\\') {
      const n = p[i + 1];
      if (n === undefined) throw new PatternError('trailing backslash');
      if (/[1-9]/.test(n)) throw new PatternError(`backreference "\\${n}" is not POSIX ERE`);
      atomStart = out.length;
      if (n === '<' || n === '>') out += '\\b';
      else if (/[wWsSdDbB]/.test(n)) out += '\\' + n; // GNU extensions, as egrep takes them
      else if (/[a-zA-Z0-9]/.test(n)) throw new PatternError(`"\\${n}" is not a POSIX ERE escape`);
      else out += '\\' + n;
      i++;
    } else if (c === '[') {
      const [cls, end] = bracket(p, i, 'posix');
      atomStart = out.length;
      out += cls;
      i = end;
    } else if (c === '(') {
      if (p[i + 1] === '?') throw new PatternError('"(?" groups (look-around, flags, lazy) are not POSIX ERE');
      groupStarts.push(out.length);
      out += '(';
      atomStart = -1;
    } else if (c === ')') {
      const start = groupStarts.pop();
      if (start === undefined) throw new PatternError(`unmatched ")" at offset ${i}`);
      out += ')';
      atomStart = start;
    } else if (c === '|' || c === '^' || c === '$') {
      out += c;
      atomStart = -1;
    } else if (c === '{' || c === '}' || c === ']' || c === '/') {
      // A `{` that is not a bound, or a stray `]`, is an ordinary character in ERE.
      atomStart = out.length;
      out += '\\' + c;
    } else {
      atomStart = out.length;
      out += c;
    }
  }
  if (groupStarts.length) throw new PatternError('unmatched "("');
  return out;
}

/** Translate a bracket expression starting at p[i] === '['; returns it and the index of its `]`. */
function bracket(p: string, i: number, type: RegexType): [string, number] {
  let j = i + 1;
  let out = '[';
  if (p[j] === '^') {
    out += '^';
    j++;
  }
  let first = true;
  for (; j < p.length; j++) {
    const c = p[j]!;
    if (c === ']' && !first) return [out + ']', j];
    first = false;
    if (c === '[' && (p[j + 1] === ':' || p[j + 1] === '=' || p[j + 1] === '.')) {
      const kind = p[j + 1]!;
      const close = p.indexOf(kind + ']', j + 2);
      if (close < 0) throw new PatternError(`unterminated "[${kind}" in bracket expression`);
      const name = p.slice(j + 2, close);
      if (kind === ':') {
        const cls = POSIX_CLASSES[name];
        if (cls === undefined) throw new PatternError(`unknown character class "[:${name}:]"`);
        out += cls;
      } else {
        if (name.length !== 1) throw new PatternError(`"[${kind}${name}${kind}]" is supported only for single characters`);
        out += escapeInClass(name);
      }
      j = close + 1;
      continue;
    }
    if (c === '\\') {
      if (type === 'posix') {
        out += '\\\\'; // literal in POSIX brackets
      } else {
        const n = p[j + 1];
        if (n === undefined) break;
        out += '\\' + n;
        j++;
      }
      continue;
    }
    out += c === '[' ? '\\[' : c === ']' ? '\\]' : c;
  }
  throw new PatternError('unterminated bracket expression "["');
}

function escapeInClass(ch: string): string {
  return /[\\\]\[^-]/.test(ch) ? '\\' + ch : ch;
}

/** `ab[c-d]` → `[aA][bB][c-dC-D]`: case-insensitive matching without the `i` flag. */
function foldCase(src: string): string {
  const isLetter = (c: string) => /[a-zA-Z]/.test(c);
  const other = (c: string) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase());
  let out = '';
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (c === '\\') {
      const n = src[i + 1] ?? '';
      const extra = n === 'x' ? 2 : n === 'u' ? 4 : n === 'c' ? 1 : 0;
      out += src.slice(i, i + 2 + extra);
      i += 1 + extra;
    } else if (inClass) {
      if (c === ']') inClass = false;
      if (isLetter(c) && src[i + 1] === '-' && isLetter(src[i + 2] ?? '')) {
        const to = src[i + 2]!;
        out += `${c}-${to}${other(c)}-${other(to)}`;
        i += 2;
      } else out += isLetter(c) ? c + other(c) : c;
    } else if (c === '[') {
      inClass = true;
      out += c;
      if (src[i + 1] === '^') out += src[++i];
    } else if (c === '(' && src[i + 1] === '?' && src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') {
      // A named group: its name is not pattern text.
      const end = src.indexOf('>', i);
      out += src.slice(i, end + 1);
      i = end;
    } else out += isLetter(c) ? `[${c}${other(c)}]` : c;
  }
  return out;
}
