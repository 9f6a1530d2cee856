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
