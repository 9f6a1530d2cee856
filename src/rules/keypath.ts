// Reading a `match_` key out of an event. A path is dot-separated; a numeric
// part indexes an array; an array met with a name part fans out over its
// elements. The values a key yields are the scalars at the end: strings as they
// are, numbers and booleans as their decimal/`true` text, arrays element by
// element. Objects and null yield nothing, so a match on them fails like a
// missing key.

export interface KeyPath {
  /** As written after `match_`, for messages. */
  key: string;
  /** Candidate paths, first one present wins (aliases have several). */
  paths: Array<{ parts: string[]; join: boolean; rests: string[] }>;
}

export function compileKeyPath(key: string, paths: string[]): KeyPath {
  return {
    key,
    paths: paths.map((p) => {
      const join = p.startsWith('join:');
      const parts = (join ? p.slice(5) : p).split('.');
      // rests[i]: the path from part i on, as one flattened key (`"process.executable"`).
      return { parts, join, rests: parts.map((_p, i) => parts.slice(i).join('.')) };
    }),
  };
}

const NUMERIC = /^\d+$/;

const own = Object.prototype.hasOwnProperty;

function collect(v: unknown, parts: string[], rests: string[], i: number, out: unknown[]): void {
  if (v === undefined || v === null) return;
  if (i === parts.length) {
    out.push(v);
    return;
  }
  const part = parts[i]!;
  if (Array.isArray(v)) {
    if (NUMERIC.test(part)) collect(v[Number(part)], parts, rests, i + 1, out);
    else for (const el of v) collect(el, parts, rests, i, out);
    return;
  }
  if (typeof v === 'object') {
    // A flattened key (`"process.executable": …` at this level) also counts.
    const o = v as Record<string, unknown>;
    if (own.call(o, part)) collect(o[part], parts, rests, i + 1, out);
    else if (i < parts.length - 1) {
      const rest = rests[i]!;
      if (own.call(o, rest)) out.push(o[rest]);
    }
  }
}

function pushScalars(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') out.push(String(v));
  else if (Array.isArray(v)) for (const el of v) pushScalars(el, out);
}

/**
 * One path walked through objects only, the way nearly every key meets an
 * event: the values it yields, [] for none, or undefined where it meets an
 * array before its last part (collect then fans out). The same answer as
 * collect and pushScalars without their arrays and recursion: this runs for
 * every key of every event.
 */
function walk(event: unknown, parts: string[], rests: string[]): string[] | undefined {
  let v = event;
  const last = parts.length - 1;
  for (let i = 0; i <= last; i++) {
    if (v === undefined || v === null || typeof v !== 'object') return [];
    if (Array.isArray(v)) return undefined;
    const o = v as Record<string, unknown>;
    const part = parts[i]!;
    if (own.call(o, part)) v = o[part];
    else if (i < last && own.call(o, rests[i]!)) {
      v = o[rests[i]!];
      break;
    } else return [];
  }
  if (typeof v === 'string') return [v];
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return [String(v)];
  const out: string[] = [];
  if (Array.isArray(v)) pushScalars(v, out);
  return out;
}

/** The text values `kp` yields from `event`; empty means the key is missing. */
export function keyValues(event: unknown, kp: KeyPath): string[] {
  for (const p of kp.paths) {
    let out = walk(event, p.parts, p.rests);
    if (out === undefined) {
      const found: unknown[] = [];
      collect(event, p.parts, p.rests, 0, found);
      out = [];
      for (const v of found) pushScalars(v, out);
    }
    if (out.length === 0) continue;
    return p.join && out.length !== 1 ? [out.join(' ')] : out;
  }
  return [];
}
