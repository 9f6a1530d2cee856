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

// What a field's unquoted value may be: text, hex-encoded text, binary hex.
const PLAIN = 0;
const HEX = 1;
const BINARY = 2;

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

/** Store a field; under `name_2`, `name_3`, … when the name is taken (never lose a field). */
function put(out: Fields, name: string, value: string): void {
  // ('__proto__' is never undefined on a plain object, so it takes this path too)
  if (out[name] !== undefined) {
    let i = 2;
    while (out[`${name}_${i}`] !== undefined) i++;
    Object.defineProperty(out, `${name}_${i}`, { value, enumerable: true, writable: true, configurable: true });
    return;
  }
  out[name] = value;
}

type Factory = (values: string[]) => Fields;

/**
 * The field names a record type had last time, slot by slot. Records of one
 * type nearly always carry the same names in the same order. A name the shape
 * predicts is recognised with one startsWith instead of a slice and a
 * string-table lookup, and once a layout has repeated a few times its objects
 * are built by a generated object literal (one hidden class, no keyed stores),
 * the technique ajv and fast-json-stringify use. Keep one shape per record type.
 */
export class FieldShape {
  readonly names: string[] = [];
  /** per slot: PLAIN, HEX or BINARY (what the value may be) */
  readonly kinds: number[] = [];
  /** consecutive records that matched every slot */
  streak = 0;
  factory: Factory | undefined;
  /** incremented whenever the layout changes, so derived caches can tell */
  version = 0;

  /** Forget slots from `slot` on (a record showed another layout). */
  truncate(slot: number): void {
    this.names.length = slot;
    this.kinds.length = slot;
    this.streak = 0;
    this.factory = undefined;
    this.version++;
  }
}

// Slots remembered per shape; fields past this are scanned without prediction.
const MAX_SHAPE_SLOTS = 64;
// Exact matches before a layout gets a generated factory.
const FACTORY_AFTER = 8;

// Shape slot of a msg='…' wrapper: not a field itself (a name cannot hold '=' and ').
const MSG_SLOT = "msg='";

// Generated factories by layout, shared by all shapes: a type whose records
// alternate between two layouts (PATH with and without some fields) compiles
// each once. Bounded: past MAX_FACTORIES layouts, new ones are not compiled
// (their records are built field by field, slower but correct).
const MAX_FACTORIES = 1024;
const factories = new Map<string, Factory | null>();

/** A generated `(v) => ({ "arch": v[0], … })` for a layout, or undefined when one cannot be made safely. */
function makeFactory(slots: readonly string[]): Factory | undefined {
  const key = slots.join('\0');
  const cached = factories.get(key);
  if (cached !== undefined) return cached ?? undefined;
  if (factories.size >= MAX_FACTORIES) return undefined;
  const names = slots.filter((n) => n !== MSG_SLOT);
  const seen = new Set<string>();
  let ok = true;
  for (const n of names) {
    // a repeated name would be lost in a literal; __proto__ would set the prototype
    if (seen.has(n) || n === '__proto__') ok = false;
    seen.add(n);
  }
  // JSON.stringify quotes the names safely: they are data, never code.
  const f = ok ? (new Function('v', `return { ${names.map((n, i) => `${JSON.stringify(n)}: v[${i}]`).join(', ')} };`) as Factory) : null;
  factories.set(key, f);
  return f ?? undefined;
}

/**
 * A generated function copying the named fields of an object into a new
 * object literal (one hidden class, no keyed stores): `(f) => ({ "exit": f["exit"], … })`.
 * For interpret's auditd.data, built once per record layout.
 */
export function makePicker(names: readonly string[]): (f: Fields) => Record<string, unknown> {
  const props = names.filter((n) => n !== '__proto__').map((n) => `${JSON.stringify(n)}: f[${JSON.stringify(n)}]`);
  return new Function('f', `return { ${props.join(', ')} };`) as (f: Fields) => Record<string, unknown>;
}

// Problems found by the current scan. Module state rather than a closure per
// call: scanning is synchronous and never re-entered from outside.
let problemCount = 0;
let problemSink: ProblemSink | undefined;

function problem(message: string): void {
  problemCount++;
  problemSink?.(message);
}

// The current record's fields, in order, before they become an object.
// Reused between calls (not cleared: each call overwrites what it reads);
// bounded by the longest record.
const fieldNames: string[] = [];
const fieldValues: string[] = [];
let fieldCount = 0;
/** every field so far was the name its shape slot predicted */
let exact = true;

/** True when the last scanFields call's record had exactly its shape's remembered layout. */
export function lastScanWasExact(): boolean {
  return exact;
}

/**
 * Scan one record: `body` (the text after `): `) and, when present, auditd's
 * ENRICHED part, into one object. `execve` marks an EXECVE record (its aN
 * values are hex-capable). `shape` (one per record type) makes it fast.
 * Malformed values are kept as written and reported to `onProblem`; the
 * number of problems is available from lastProblemCount().
 */
export function scanFields(body: string, enriched: string | undefined, execve: boolean, shape: FieldShape, onProblem?: ProblemSink): Fields {
  problemCount = 0;
  problemSink = onProblem;
  fieldCount = 0;
  exact = true;
  let slot = scan(body, execve, 0, body.length, shape, 0);
  if (enriched !== undefined) slot = scan(enriched, false, 0, enriched.length, shape, slot);
  problemSink = undefined;
  if (slot !== shape.names.length) {
    if (slot < shape.names.length) shape.truncate(slot);
    exact = false;
  }
  let out: Fields;
  if (exact) {
    if (shape.factory === undefined && ++shape.streak >= FACTORY_AFTER && shape.streak < FACTORY_AFTER + 2) {
      shape.factory = makeFactory(shape.names);
    }
    if (shape.factory !== undefined) return shape.factory(fieldValues);
  } else {
    shape.streak = 0;
  }
  out = {};
  for (let k = 0; k < fieldCount; k++) put(out, fieldNames[k]!, fieldValues[k]!);
  return out;
}

/** Problems the last scanFields call found. */
export function lastProblemCount(): number {
  return problemCount;
}

function emit(name: string, value: string): number {
  fieldNames[fieldCount] = name;
  fieldValues[fieldCount] = value;
  return fieldCount++;
}

/** True when body has `name=` at pos (before to). A charCodeAt loop: startsWith with a position is not inlined. */
function nameAt(body: string, pos: number, to: number, name: string): boolean {
  const n = name.length;
  if (pos + n >= to || body.charCodeAt(pos + n) !== EQ) return false;
  for (let k = 0; k < n; k++) if (body.charCodeAt(pos + k) !== name.charCodeAt(k)) return false;
  return true;
}

function scan(body: string, execve: boolean, from: number, to: number, shape: FieldShape, slot: number): number {
  let pos = from;
  // The last unquoted plain value, so a bare word after it ("op=adding group") extends it.
  let lastField = -1;
  let unparsedField = -1;
  const names = shape.names;
  while (pos < to) {
    while (pos < to && body.charCodeAt(pos) === SP) pos++;
    if (pos >= to) break;
    let name: string;
    let kind: number;
    let i: number;
    const predicted = slot < names.length ? names[slot]! : undefined;
    if (predicted === MSG_SLOT && body.startsWith(MSG_SLOT, pos)) {
      name = 'msg';
      kind = PLAIN;
      i = pos + 3;
    } else if (predicted !== undefined && nameAt(body, pos, to, predicted)) {
      name = predicted;
      kind = shape.kinds[slot]!;
      i = pos + predicted.length;
    } else {
      // name: up to '=' or space
      i = pos;
      let c = 0;
      while (i < to) {
        c = body.charCodeAt(i);
        if (c === EQ || c === SP) break;
        i++;
      }
      if (i >= to || c === SP) {
        // bare word: extends the previous unquoted value, or is collected as unparsed text
        const word = body.slice(pos, i);
        if (lastField >= 0) fieldValues[lastField] += ' ' + word;
        else if (unparsedField >= 0) fieldValues[unparsedField] += ' ' + word;
        else {
          unparsedField = emit(UNPARSED, word);
          exact = false;
        }
        pos = i + 1;
        continue;
      }
      name = body.slice(pos, i);
      kind = isHexField(name, execve) ? HEX : BINARY_FIELDS.has(name) ? BINARY : PLAIN;
      exact = false;
      if (slot < MAX_SHAPE_SLOTS) {
        shape.truncate(slot);
        names[slot] = name;
        shape.kinds[slot] = kind;
      }
    }
    slot++;
    const vs = i + 1;
    const first = vs < to ? body.charCodeAt(vs) : -1;
    lastField = -1;
    if (first === DQ) {
      const end = body.indexOf('"', vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated double quote`);
        emit(name, body.slice(vs, to));
        break;
      }
      emit(name, body.slice(vs + 1, end));
      pos = end + 1;
    } else if (first === SQ) {
      let end = body.indexOf("'", vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated single quote`);
        end = to;
      }
      if (name === 'msg') {
        // userspace records: msg='op=… acct="x" res=success' carries the real fields;
        // msg itself is no field, its slot says "the inner fields follow"
        if (names[slot - 1] === 'msg') names[slot - 1] = MSG_SLOT;
        slot = scan(body, false, vs + 1, end, shape, slot);
      } else emit(name, body.slice(vs + 1, end));
      pos = end + 1;
    } else if (first === LBRACE) {
      let end = body.indexOf('}', vs + 1);
      if (end < 0 || end >= to) {
        problem(`field ${name}: unterminated brace`);
        end = to - 1;
      }
      emit(name, body.slice(vs, end + 1));
      pos = end + 1;
    } else {
      let end = body.indexOf(' ', vs);
      if (end < 0 || end > to) end = to;
      const v = body.slice(vs, end);
      if (kind === HEX) emit(name, decodeUnquoted(name, v));
      else {
        const k = emit(name, v);
        if (kind === PLAIN) lastField = k;
      }
      pos = end + 1;
    }
  }
  return slot;
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
