// Field scanner for the text after `msg=audit(…): `. Hand-written (indexOf /
// charCodeAt, no regex, no closures): it runs for every record and the budget
// is a couple of microseconds per record.
//
// Value forms, as the kernel and auditd write them:
//   name="text"         quoted: text without the quotes
//   name=74657874       unquoted, in an "untrusted string" field: hex-encoded
//   name=(null) / (none) / ?   literal
//   msg='op=… res=…'    userspace records: the quoted inner fields are scanned too
//   SADDR={ … }         ENRICHED part: braces hold spaces
//   name=other          anything else: as written

/** Fields of one record, values unquoted and hex-decoded. */
export type Fields = Record<string, string>;

/** Where the scanner reports a malformed field (bad hex, unterminated quote). Never throws. */
export type ProblemSink = (message: string) => void;

// Fields libauparse interprets as "escaped" (AUPARSE_TYPE_ESCAPED, typetab.h,
// audit 3.0.9) plus PROCTITLE's proctitle and TTY's data: the kernel and the
// audit tools hex-encode these whenever the text holds a space, a quote, a
// control character or a byte above 0x7e.
const HEX_FIELDS: ReadonlySet<string> = new Set([
  'path', 'comm', 'exe', 'file', 'name', 'watch', 'cwd', 'cmd', 'acct', 'dir', 'key', 'vm',
  'old-chardev', 'new-chardev', 'old-disk', 'new-disk', 'old-fs', 'new-fs', 'old-net', 'new-net',
  'device', 'cgroup', 'apparmor', 'operation', 'denied_mask', 'info', 'profile', 'requested_mask',
  'old-rng', 'new-rng', 'ocomm', 'grp', 'new_group', 'invalid_context', 'sw', 'root_dir',
  'proctitle', 'data', 'old-vcpu', 'new-vcpu', 'old-mem', 'new-mem', 'vm-ctx', 'img-ctx',
]);

/**
 * Fields whose hex is a binary structure, not text: kept as the hex string (a
 * decoded sockaddr would be unreadable bytes). sockaddr.ts decodes saddr.
 */
const BINARY_FIELDS: ReadonlySet<string> = new Set(['saddr']);

/** Name for text that is not part of any name=value pair (a bare word with nothing to attach to). */
export const UNPARSED = 'unparsed';

const SP = 32;
const DQ = 34; // "
const SQ = 39; // '
const EQ = 61; // =
const LBRACE = 123;

/** True when s[from, to) is non-empty, even-length hex. */
export function isHex(s: string, from = 0, to = s.length): boolean {
  if (to <= from || ((to - from) & 1) === 1) return false;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** Hex (already checked with isHex) to text, UTF-8 with U+FFFD for invalid sequences. */
export function hexToText(hex: string): string {
  return Buffer.from(hex, 'hex').toString('utf8');
}

/** Decode one unquoted value of a hex-capable field; the raw text when it is a literal or not hex. */
function decodeUnquoted(name: string, v: string): string {
  if (isHex(v)) return hexToText(v);
  const c = v.charCodeAt(0);
  // (null), (none), ?, and empty values are literal
  if (v.length === 0 || c === 40 /* ( */ || v === '?') return v;
  problem(`field ${name}: unquoted value is not valid hex (${v.length > 40 ? v.slice(0, 40) + '…' : v})`);
  return v;
}

function isHexField(name: string, execve: boolean): boolean {
  if (HEX_FIELDS.has(name)) return true;
  // EXECVE's a0, a1, … and the pieces a3[0], a3[1] of long arguments (not a3_len, not argc)
  if (execve && name.charCodeAt(0) === 97 /* a */) {
    const c = name.charCodeAt(1);
    if (c >= 48 && c <= 57) return name.indexOf('_') < 0;
  }
  return false;
}

/** Store a field; false when the name was taken and the value went under `name_2`, `name_3`, …. */
function put(out: Fields, name: string, value: string): boolean {
  if (out[name] !== undefined || name === '__proto__') {
    // Repeated name (or one that would touch the prototype): keep both, never lose a field.
    let i = 2;
    while (out[`${name}_${i}`] !== undefined) i++;
    Object.defineProperty(out, `${name}_${i}`, { value, enumerable: true, writable: true, configurable: true });
    return false;
  }
  out[name] = value;
  return true;
}

// Problems found by the current scan. Module state rather than a closure per
// call: scanning is synchronous and never re-entered from outside.
let problemCount = 0;
let problemSink: ProblemSink | undefined;

function problem(message: string): void {
  problemCount++;
  problemSink?.(message);
}

/**
 * Scan `body` into `out`. `execve` marks an EXECVE record (its aN values are
 * hex-capable). Malformed values are kept as written and reported to
 * `onProblem`. Returns the number of problems.
 */
export function scanFields(body: string, out: Fields, execve: boolean, onProblem?: ProblemSink): number {
  problemCount = 0;
  problemSink = onProblem;
  scan(body, out, execve, 0, body.length);
  problemSink = undefined;
  return problemCount;
}

function scan(body: string, out: Fields, execve: boolean, from: number, to: number): void {
  let pos = from;
  // The last unquoted plain value, so a bare word after it ("op=adding group") extends it.
  let lastName: string | undefined;
  while (pos < to) {
    while (pos < to && body.charCodeAt(pos) === SP) pos++;
    if (pos >= to) break;
    // name: up to '=' or space
    let i = pos;
    let c = 0;
    while (i < to) {
      c = body.charCodeAt(i);
      if (c === EQ || c === SP) break;
      i++;
    }
    if (i >= to || c === SP) {
      // bare word: extends the previous unquoted value, or is collected as unparsed text
      const word = body.slice(pos, i);
      if (lastName !== undefined) out[lastName] += ' ' + word;
      else if (out[UNPARSED] !== undefined) out[UNPARSED] += ' ' + word;
      else out[UNPARSED] = word;
      pos = i + 1;
      continue;
    }
    const name = body.slice(pos, i);
    const vs = i + 1;
    const first = vs < to ? body.charCodeAt(vs) : -1;
    lastName = undefined;
    if (first === DQ) {
      const end = body.indexOf('"', vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated double quote`);
        put(out, name, body.slice(vs, to));
        break;
      }
      put(out, name, body.slice(vs + 1, end));
      pos = end + 1;
    } else if (first === SQ) {
      let end = body.indexOf("'", vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated single quote`);
        end = to;
      }
      // userspace records: msg='op=… acct="x" res=success' carries the real fields
      if (name === 'msg') scan(body, out, false, vs + 1, end);
      else put(out, name, body.slice(vs + 1, end));
      pos = end + 1;
    } else if (first === LBRACE) {
      let end = body.indexOf('}', vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated brace`);
        end = to - 1;
      }
      put(out, name, body.slice(vs, end + 1));
      pos = end + 1;
    } else {
      let end = body.indexOf(' ', vs);
      if (end < 0 || end > to) end = to;
      const v = body.slice(vs, end);
      if (isHexField(name, execve)) {
        put(out, name, decodeUnquoted(name, v));
      } else if (put(out, name, v) && !BINARY_FIELDS.has(name)) {
        lastName = name;
      }
      pos = end + 1;
    }
  }
}

/**
 * One value of a hex-capable field as bytes: quoted text as its UTF-8 bytes,
 * hex as the decoded bytes. For reassembling EXECVE arguments the kernel split
 * into pieces (a multi-byte character may straddle two pieces).
 */
export function rawValueBytes(raw: string): Buffer {
  if (raw.charCodeAt(0) === DQ && raw.charCodeAt(raw.length - 1) === DQ && raw.length >= 2) {
    return Buffer.from(raw.slice(1, -1), 'utf8');
  }
  if (isHex(raw)) return Buffer.from(raw, 'hex');
  return Buffer.from(raw, 'utf8');
}

/**
 * The raw (still quoted / hex) value of each `name=` in a record body, in order,
 * without decoding. Slow path for the rare long EXECVE arguments only.
 */
export function rawFieldList(body: string): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  let pos = 0;
  const to = body.length;
  while (pos < to) {
    while (pos < to && body.charCodeAt(pos) === SP) pos++;
    if (pos >= to) break;
    const eq = body.indexOf('=', pos);
    let sp = body.indexOf(' ', pos);
    if (sp < 0) sp = to;
    if (eq < 0 || eq > sp) {
      pos = sp + 1;
      continue;
    }
    const name = body.slice(pos, eq);
    let end: number;
    if (body.charCodeAt(eq + 1) === DQ) {
      end = body.indexOf('"', eq + 2);
      end = end < 0 ? to : end + 1;
    } else {
      end = body.indexOf(' ', eq + 1);
      if (end < 0) end = to;
    }
    list.push([name, body.slice(eq + 1, end)]);
    pos = end + 1;
  }
  return list;
}
