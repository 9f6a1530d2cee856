import type { KeyPath } from './keypath.js';

// Reading only what the rule tree needs out of an event's JSON text. A match
// worker used to JSON.parse every 2 KB event to test a dozen keys: the parse
// was two thirds of its time, and the garbage it left kept V8's collector
// threads busy on the other core, so a second worker gained little. The
// projection walks the text once, skips what no key asks for (auditd.records,
// most of it) and builds an object holding only the asked-for parts, for which
// every key path of the tree yields exactly what it yields on the full event.
//
// The text is taken as JSON.stringify writes it (the encoded-batch contract:
// no whitespace); anything else makes projectJson return undefined and the
// caller parses the whole text instead.

export interface Projection {
  /** Keep the whole value here (a key path ends here). */
  full: boolean;
  /** Keys to keep at this level, and what to keep under each. */
  children: Map<string, Projection>;
  /** A numeric part follows (array index): arrays here are kept whole. */
  indexed: boolean;
  /**
   * The children by key length, as the quoted key text: a key in the text is
   * recognised by comparing it in place, without slicing and hashing it.
   */
  byLength: Array<Array<[quoted: string, key: string, p: Projection]> | undefined>;
}

const NUMERIC = /^\d+$/;

function node(): Projection {
  return { full: false, children: new Map(), indexed: false, byLength: [] };
}

function child(p: Projection, key: string): Projection {
  let c = p.children.get(key);
  if (c === undefined) {
    p.children.set(key, (c = node()));
    const quoted = JSON.stringify(key);
    (p.byLength[quoted.length] ??= []).push([quoted, key, c]);
  }
  return c;
}

/**
 * The projection serving `keys` (every candidate path of each, as keypath.ts
 * walks them: a part descends, or the rest of the path as one flattened key
 * takes the value) plus `whole`, top-level keys kept entire.
 */
export function projectionFor(keys: readonly KeyPath[], whole: readonly string[] = []): Projection {
  const root = node();
  for (const w of whole) child(root, w).full = true;
  for (const kp of keys) {
    for (const p of kp.paths) {
      let at = root;
      for (let i = 0; i < p.parts.length; i++) {
        if (i < p.parts.length - 1) child(at, p.rests[i]!).full = true;
        if (NUMERIC.test(p.parts[i]!)) at.indexed = true;
        at = child(at, p.parts[i]!);
      }
      at.full = true;
    }
  }
  return root;
}

const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;
const COMMA = 44;
const LBRACE = 123;
const RBRACE = 125;
const LBRACKET = 91;
const RBRACKET = 93;

// Parse position, module state: projection is synchronous and not re-entered.
let s = '';
let pos = 0;
let escaped = false;

class NotStringified extends Error {}
const notStringified = new NotStringified();

/** pos at a quote → pos after the closing quote; `escaped` says whether a backslash was inside. */
function skipString(): void {
  let j = s.indexOf('"', pos + 1);
  escaped = false;
  while (j >= 0) {
    let k = j - 1;
    while (s.charCodeAt(k) === BACKSLASH) k--;
    if (k < j - 1) escaped = true;
    if ((j - k) % 2 === 1) {
      pos = j + 1;
      return;
    }
    j = s.indexOf('"', j + 1);
  }
  throw notStringified;
}

// Everything up to the next bracket outside a string, strings whole: a whole
// run of a skipped value in one native match instead of a loop per string.
// Linear (the string part is the unrolled loop, no nested repetition can retry).
const RUN = /(?:[^"{}[\]]+|"[^"\\]*(?:\\.[^"\\]*)*")*/y;

function skipValue(): void {
  const c = s.charCodeAt(pos);
  if (c === QUOTE) return skipString();
  if (c === LBRACE || c === LBRACKET) {
    let depth = 0;
    for (;;) {
      const d = s.charCodeAt(pos);
      if (d === LBRACE || d === LBRACKET) {
        depth++;
        pos++;
      } else if (d === RBRACE || d === RBRACKET) {
        pos++;
        if (--depth === 0) return;
      } else {
        RUN.lastIndex = pos;
        RUN.test(s);
        // nothing matched: an unterminated string, or the end of the text
        if (RUN.lastIndex === pos) throw notStringified;
        pos = RUN.lastIndex;
      }
    }
  }
  const from = pos;
  while (pos < s.length) {
    const d = s.charCodeAt(pos);
    if (d === COMMA || d === RBRACE || d === RBRACKET) break;
    pos++;
  }
  if (pos === from) throw notStringified;
}

/** The value at pos, whole. */
function takeValue(): unknown {
  const from = pos;
  if (s.charCodeAt(pos) === QUOTE) {
    skipString();
    return escaped ? JSON.parse(s.slice(from, pos)) : s.slice(from + 1, pos - 1);
  }
  skipValue();
  return JSON.parse(s.slice(from, pos));
}

function projectValue(p: Projection): unknown {
  if (p.full) return takeValue();
  const c = s.charCodeAt(pos);
  if (c === LBRACE) return projectObject(p);
  if (c === LBRACKET) {
    if (p.indexed) return takeValue();
    // elements are read at the array's own level (keypath.ts fans out over them)
    const out: unknown[] = [];
    pos++;
    if (s.charCodeAt(pos) === RBRACKET) {
      pos++;
      return out;
    }
    for (;;) {
      out.push(projectValue(p));
      const d = s.charCodeAt(pos++);
      if (d === RBRACKET) return out;
      if (d !== COMMA) throw notStringified;
    }
  }
  return takeValue();
}

function projectObject(p: Projection): Record<string, unknown> {
  // no prototype: a "__proto__" key stays an ordinary key, as JSON.parse keeps it
  const out = Object.create(null) as Record<string, unknown>;
  pos++;
  if (s.charCodeAt(pos) === RBRACE) {
    pos++;
    return out;
  }
  for (;;) {
    if (s.charCodeAt(pos) !== QUOTE) throw notStringified;
    const kFrom = pos;
    skipString();
    let key: string | undefined;
    let c: Projection | undefined;
    if (escaped) {
      key = JSON.parse(s.slice(kFrom, pos)) as string;
      c = p.children.get(key);
    } else {
      const candidates = p.byLength[pos - kFrom];
      if (candidates !== undefined) {
        for (const [quoted, k, cp] of candidates) {
          if (s.startsWith(quoted, kFrom)) {
            key = k;
            c = cp;
            break;
          }
        }
      }
    }
    if (s.charCodeAt(pos++) !== COLON) throw notStringified;
    if (c === undefined) skipValue();
    else out[key!] = projectValue(c);
    const d = s.charCodeAt(pos++);
    if (d === RBRACE) return out;
    if (d !== COMMA) throw notStringified;
  }
}

/**
 * The parts of the event `text` (a JSON object as JSON.stringify writes it)
 * that `p` asks for, or undefined when the text is not laid out so.
 */
export function projectJson(text: string, p: Projection): Record<string, unknown> | undefined {
  s = text;
  pos = 0;
  try {
    if (text.charCodeAt(0) !== LBRACE) return undefined;
    const out = projectObject(p);
    return pos === text.length ? out : undefined;
  } catch (e) {
    if (e === notStringified || e instanceof SyntaxError) return undefined;
    throw e;
  } finally {
    s = '';
  }
}
