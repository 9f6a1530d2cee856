import { SkafeError } from '../errors.js';

// The original SKAFE read its agent, server and .rules files with go-ini, so
// this accepts the same shape: `key = value` lines, `#` and `;` comments, keys
// before any header in the global section (name ''), `[A.B]` headers whose dots
// the rules engine reads as inheritance. Everything keeps its line number so a
// bad value can be named by file and line later, by whoever interprets it.

export interface IniKey {
  key: string;
  value: string;
  line: number;
}

export interface IniSection {
  /** '' for the global section (keys before the first header, or an empty `[]`). */
  name: string;
  /** Line of the `[header]`, 0 for the implicit global section. */
  line: number;
  keys: IniKey[];
}

export interface IniDocument {
  sections: IniSection[];
}

export interface IniOptions {
  /**
   * Strip ` # …` and ` ; …` after a value (go-ini's default). Only when the
   * marker follows whitespace, so regexes like `a#b` survive; quote a value to
   * keep a ` #` in it. Default true.
   */
  inlineComments?: boolean;
}

// A config file is small; refuse absurd input instead of building huge arrays.
const MAX_LINES = 1_000_000;

export function parseIni(text: string, file: string, opts: IniOptions = {}): IniDocument {
  const inlineComments = opts.inlineComments ?? true;
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r?\n/);
  if (lines.length > MAX_LINES) throw bad(file, MAX_LINES, `more than ${MAX_LINES} lines`);

  const global: IniSection = { name: '', line: 0, keys: [] };
  const sections: IniSection[] = [global];
  let current = global;

  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const raw = lines[i]!.trim();
    if (raw === '' || raw[0] === '#' || raw[0] === ';') continue;

    if (raw[0] === '[') {
      const close = raw.indexOf(']');
      if (close < 0) throw bad(file, lineNo, `section header "${raw}" has no closing "]"`);
      const rest = raw.slice(close + 1).trim();
      if (rest !== '' && rest[0] !== '#' && rest[0] !== ';') throw bad(file, lineNo, `unexpected text "${rest}" after section header`);
      const name = raw.slice(1, close).trim();
      if (name === '') {
        // `[]` (seen in the original's example agent config) means back to the global section.
        current = global;
        continue;
      }
      if (/^\.|\.\.|\.$/.test(name)) throw bad(file, lineNo, `section name "${name}" has an empty part between dots`);
      current = { name, line: lineNo, keys: [] };
      sections.push(current);
      continue;
    }

    const eq = firstSeparator(raw);
    if (eq < 0) throw bad(file, lineNo, `expected "key = value", "[section]" or a comment, got "${truncate(raw)}"`);
    const key = raw.slice(0, eq).trim();
    if (key === '') throw bad(file, lineNo, 'a value without a key');
    if (/\s/.test(key)) throw bad(file, lineNo, `key "${key}" contains whitespace`);
    let value = raw.slice(eq + 1).trim();
    value = unquote(value, inlineComments, file, lineNo);
    current.keys.push({ key, value, line: lineNo });
  }

  // sections[0] is always the global section, possibly empty.
  return { sections };
}

/** The last value of `key` in a section (later lines override earlier ones, as in go-ini). */
export function iniGet(section: IniSection, key: string): IniKey | undefined {
  for (let i = section.keys.length - 1; i >= 0; i--) if (section.keys[i]!.key === key) return section.keys[i];
  return undefined;
}

/** The error for a bad value found while interpreting a parsed file: names the file and line. */
export function iniError(file: string, k: Pick<IniKey, 'line'> & { key?: string }, message: string): SkafeError {
  return new SkafeError('SKAFE_CONFIG_INVALID', `${file}:${k.line}: ${k.key ? `${k.key}: ` : ''}${message}`, {
    file,
    line: k.line,
    ...(k.key ? { field: k.key } : {}),
  });
}

function firstSeparator(s: string): number {
  // go-ini also accepts `key: value`; take whichever of = and : comes first.
  const eq = s.indexOf('=');
  const colon = s.indexOf(':');
  if (eq < 0) return colon;
  if (colon < 0) return eq;
  return Math.min(eq, colon);
}

function unquote(value: string, inlineComments: boolean, file: string, line: number): string {
  const q = value[0];
  if (q === '"' || q === "'" || q === '`') {
    const end = value.indexOf(q, 1);
    if (end < 0) throw bad(file, line, `unterminated ${q}quoted${q} value`);
    const rest = value.slice(end + 1).trim();
    if (rest !== '' && !(inlineComments && (rest[0] === '#' || rest[0] === ';'))) {
      throw bad(file, line, `unexpected text "${truncate(rest)}" after quoted value`);
    }
    return value.slice(1, end);
  }
  if (inlineComments) {
    const m = /\s[#;]/.exec(value);
    if (m) value = value.slice(0, m.index).trimEnd();
  }
  return value;
}

function bad(file: string, line: number, message: string): SkafeError {
  return new SkafeError('SKAFE_CONFIG_INVALID', `${file}:${line}: ${message}`, { file, line });
}

function truncate(s: string): string {
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}
