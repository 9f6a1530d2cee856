/**
 * Values at a dotted path in an event (`process.executable`, `auditd.paths.name`).
 * Arrays along the way fan out, so the result is every value found; numbers and
 * booleans become their text. Used by `filter`, `skafe tail --where`.
 */
export function valuesAt(obj: unknown, dotted: string): string[] {
  const out: string[] = [];
  collect(obj, dotted.split('.'), 0, out);
  return out;
}

function collect(v: unknown, parts: string[], i: number, out: string[]): void {
  if (v === undefined || v === null) return;
  if (Array.isArray(v)) {
    for (const x of v) collect(x, parts, i, out);
    return;
  }
  if (i === parts.length) {
    if (typeof v === 'object') out.push(JSON.stringify(v));
    else out.push(String(v));
    return;
  }
  if (typeof v !== 'object') return;
  const o = v as Record<string, unknown>;
  // A key may itself contain dots (`@timestamp` does not, but ECS allows flat keys): try the longest match first.
  for (let j = parts.length; j > i; j--) {
    const k = j - i === 1 ? parts[i]! : parts.slice(i, j).join('.');
    if (Object.prototype.hasOwnProperty.call(o, k)) collect(o[k], parts, j, out);
  }
}

/**
 * valuesAt() on an event still in its JSON text, without parsing all of it:
 * walks the text, skipping the values it does not need (strings honour
 * escapes, nested brackets are counted). Routing on `event.kind` reads a few
 * dozen bytes of a 2 KB event this way. Same answers as valuesAt(JSON.parse(text)).
 */
export function valuesAtJson(text: string, dotted: string): string[] {
  const out: string[] = [];
  const parts = dotted.split('.');
  const r = { pos: 0 };
  skipWs(text, r);
  walk(text, r, parts, 0, out, true);
  return out;
}

function skipWs(s: string, r: { pos: number }): void {
  let c = s.charCodeAt(r.pos);
  while (c === 32 || c === 10 || c === 13 || c === 9) c = s.charCodeAt(++r.pos);
}

/** Skip one JSON value starting at r.pos; returns its [start, end). */
function skipValue(s: string, r: { pos: number }): [number, number] {
  const start = r.pos;
  const c = s[r.pos];
  if (c === '"') {
    let i = r.pos + 1;
    for (;;) {
      const q = s.indexOf('"', i);
      if (q < 0) throw new SyntaxError('unterminated string');
      let bs = 0;
      for (let k = q - 1; s.charCodeAt(k) === 92; k--) bs++;
      if (bs % 2 === 0) {
        r.pos = q + 1;
        break;
      }
      i = q + 1;
    }
  } else if (c === '{' || c === '[') {
    let depth = 0;
    let i = r.pos;
    for (; i < s.length; i++) {
      const ch = s.charCodeAt(i);
      if (ch === 34) {
        r.pos = i;
        skipValue(s, r);
        i = r.pos - 1;
      } else if (ch === 123 || ch === 91) depth++;
      else if (ch === 125 || ch === 93) {
        if (--depth === 0) break;
      }
    }
    r.pos = i + 1;
  } else {
    let i = r.pos;
    while (i < s.length && !',}] \n\r\t'.includes(s[i]!)) i++;
    r.pos = i;
  }
  return [start, r.pos];
}

// Returns true when it stopped early: outside any array, once the path's key was
// found, nothing later can match (keys are unique), so the rest is not read.
function walk(s: string, r: { pos: number }, parts: string[], i: number, out: string[], canStop: boolean): boolean {
  const c = s[r.pos];
  if (c === '[') {
    r.pos++;
    skipWs(s, r);
    if (s[r.pos] === ']') {
      r.pos++;
      return false;
    }
    for (;;) {
      skipWs(s, r);
      walk(s, r, parts, i, out, false);
      skipWs(s, r);
      if (s[r.pos] === ',') r.pos++;
      else {
        r.pos++; // ]
        return false;
      }
    }
  }
  if (i === parts.length || c !== '{') {
    const [a, b] = skipValue(s, r);
    if (i !== parts.length) return false; // a scalar where the path wants an object
    const v = JSON.parse(s.slice(a, b));
    if (v !== null) out.push(typeof v === 'object' ? JSON.stringify(v) : String(v));
    return false;
  }
  // an object, path not exhausted: visit the keys that match a prefix of the rest of the path
  r.pos++;
  for (;;) {
    skipWs(s, r);
    if (s[r.pos] === '}') {
      r.pos++;
      return false;
    }
    const [ka, kb] = skipValue(s, r);
    const key = JSON.parse(s.slice(ka, kb)) as string;
    skipWs(s, r);
    r.pos++; // :
    skipWs(s, r);
    let matched = -1;
    if (key === parts[i]) matched = i + 1;
    else if (key.includes('.')) {
      const n = key.split('.').length;
      if (parts.slice(i, i + n).join('.') === key) matched = i + n;
    }
    if (matched >= 0) {
      if (walk(s, r, parts, matched, out, canStop) || (canStop && matched === i + 1)) return true;
    } else skipValue(s, r);
    skipWs(s, r);
    if (s[r.pos] === ',') r.pos++;
  }
}
