import { readFileSync, statSync } from 'node:fs';
import { arch as osArch, constants as osConstants } from 'node:os';
import { SkafeError } from '../../errors.js';
import { recordTypeNumber } from '../record-types.js';
import x86_64 from '../syscalls/x86_64.js';
import i386 from '../syscalls/i386.js';
import aarch64 from '../syscalls/aarch64.js';
import arm from '../syscalls/arm.js';
import {
  ACTIONS, AUDIT_ARCH, AUDIT_BITMASK_SIZE, AUDIT_FILTER_PREPEND, AUDIT_KEY_SEPARATOR, AUDIT_MAX_FIELDS, AUDIT_MAX_KEY_LEN,
  F, FIELD_BY_NAME, FILETYPES, FSTYPES, GID_FIELDS, LISTS, OP_SEARCH_ORDER, OPS, PERM, RULE_HEADER_BYTES, STRING_FIELDS,
  UID_FIELDS, compareValue, type ArchName, type OpName,
} from './tables.js';

/** One rule as the kernel takes it: `struct audit_rule_data` with its string buffer. */
export interface CompiledRule {
  /** add (-a/-A/-w) or delete (-d/-W) */
  op: 'add' | 'delete';
  line: number;
  text: string;
  data: Buffer;
}

/** The non-rule lines of a rules file: the kernel settings it asks for. */
export interface RuleControls {
  deleteAll: boolean;
  backlogLimit?: number;
  backlogWaitTime?: number;
  rateLimit?: number;
  failure?: 0 | 1;
  enabled?: 0 | 1;
  /** -c / -i: keep loading after a rule the kernel refuses. */
  continueOnError: boolean;
}

export interface CompiledRuleSet {
  file?: string;
  controls: RuleControls;
  rules: CompiledRule[];
}

interface RuleBuilder {
  flags: number;
  action: number;
  mask: Uint32Array;
  fields: Array<{ field: number; op: number; value: number; str?: Buffer }>;
  syscallAdded: boolean;
  arch?: ArchName;
  keys: string[];
  watch?: boolean;
}

const SYSCALL_TABLES: Partial<Record<ArchName, ReadonlyArray<string | undefined>>> = { x86_64, i386, aarch64, arm, armeb: arm };
const syscallIndex = new Map<ReadonlyArray<string | undefined>, Map<string, number>>();
function syscallNumber(table: ReadonlyArray<string | undefined>, name: string): number | undefined {
  let idx = syscallIndex.get(table);
  if (!idx) {
    idx = new Map();
    table.forEach((n, i) => n !== undefined && idx!.set(n, i));
    syscallIndex.set(table, idx);
  }
  return idx.get(name);
}

/** The machine's own audit arch and its 32-bit companion (what b64/b32 mean here). */
export function machineArch(): { b64?: ArchName; b32?: ArchName; own: ArchName } {
  switch (osArch()) {
    case 'x64': return { own: 'x86_64', b64: 'x86_64', b32: 'i386' };
    case 'arm64': return { own: 'aarch64', b64: 'aarch64', b32: 'arm' };
    case 'ia32': return { own: 'i386', b32: 'i386' };
    case 'arm': return { own: 'arm', b32: 'arm' };
    default: return { own: 'x86_64', b64: 'x86_64', b32: 'i386' };
  }
}

let idDb: { users: Map<string, number>; groups: Map<string, number> } | undefined;
function idDatabase() {
  if (idDb) return idDb;
  const parse = (file: string) => {
    const m = new Map<string, number>();
    try {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const [name, , id] = line.split(':');
        if (name && id && /^\d+$/.test(id)) m.set(name, Number(id));
      }
    } catch { /* no database: only numeric ids work */ }
    return m;
  };
  idDb = { users: parse('/etc/passwd'), groups: parse('/etc/group') };
  return idDb;
}

class RuleLineError extends Error {}
const bad = (msg: string): never => {
  throw new RuleLineError(msg);
};

/** Splits one rules-file line into arguments the way `auditctl -R` does: on blanks, no quoting. */
export function tokenize(line: string): string[] {
  return line.trim().split(/\s+/).filter((s) => s.length > 0);
}

// strtol(…, 0) as libaudit parses numbers: 0x… hex, a leading 0 octal, else decimal.
function parseInteger(v: string, what: string): number {
  const neg = v.startsWith('-');
  const d = neg ? v.slice(1) : v;
  let n: number;
  if (/^0[xX][0-9a-fA-F]+$/.test(d)) n = parseInt(d.slice(2), 16);
  else if (/^0[0-7]+$/.test(d)) n = parseInt(d.slice(1), 8);
  else if (/^\d+$/.test(d)) n = Number(d);
  else return bad(`${what}: "${v}" is not a number`);
  if (neg) n = -n;
  if (n > 0xffffffff || n < -0x80000000) bad(`${what}: ${v} is out of range`);
  return n;
}

function parseListAction(arg: string | undefined, opt: string): { list: number; action: number } {
  if (!arg) bad(`${opt} needs list,action (e.g. always,exit)`);
  const parts = arg!.split(',');
  if (parts.length !== 2) bad(`${opt} ${arg}: expected list,action (e.g. always,exit)`);
  let list: number | undefined;
  let action: number | undefined;
  for (const p of parts) {
    if (p in LISTS) list = LISTS[p];
    else if (p in ACTIONS) action = ACTIONS[p];
    else if (p === 'entry') bad(`${opt} ${arg}: the entry list is deprecated and the kernel refuses it; use exit`);
    else if (p === 'possible') bad(`${opt} ${arg}: the possible action is deprecated; use always`);
    else bad(`${opt} ${arg}: "${p}" is neither a list (${Object.keys(LISTS).join(', ')}) nor an action (always, never)`);
  }
  if (list === undefined || action === undefined) bad(`${opt} ${arg}: needs one list and one action`);
  return { list: list!, action: action! };
}

function newRule(list: number, action: number, prepend: boolean): RuleBuilder {
  return { flags: list | (prepend ? AUDIT_FILTER_PREPEND : 0), action, mask: new Uint32Array(AUDIT_BITMASK_SIZE), fields: [], syscallAdded: false, keys: [] };
}

function addField(r: RuleBuilder, f: { field: number; op: number; value: number; str?: Buffer }): void {
  if (r.fields.length >= AUDIT_MAX_FIELDS) bad(`more than ${AUDIT_MAX_FIELDS} fields in one rule`);
  r.fields.push(f);
}

function listOf(r: RuleBuilder): number {
  return r.flags & ~AUDIT_FILTER_PREPEND;
}

function addSyscalls(r: RuleBuilder, arg: string | undefined): void {
  if (!arg) bad('-S needs a syscall name or number');
  const list = listOf(r);
  if (list !== LISTS.exit && list !== LISTS.io_uring) bad('-S is only valid on the exit (or io_uring) list');
  const archName = r.arch ?? machineArch().own;
  const table = SYSCALL_TABLES[archName];
  for (const name of arg!.split(',')) {
    if (name === 'all') {
      r.mask.fill(0xffffffff);
      continue;
    }
    let nr: number | undefined;
    if (/^\d+$/.test(name)) nr = Number(name);
    else if (table) nr = syscallNumber(table, name);
    if (nr === undefined) bad(`-S ${name}: no such syscall on ${archName}`);
    if (nr! >= AUDIT_BITMASK_SIZE * 32) bad(`-S ${name}: syscall number ${nr} out of range`);
    r.mask[nr! >>> 5]! |= (1 << (nr! & 31)) >>> 0;
  }
  r.syscallAdded = true;
}

function errnoValue(v: string): number {
  const neg = v.startsWith('-');
  const name = neg ? v.slice(1) : v;
  if (/^\d+$/.test(name)) return neg ? -Number(name) : Number(name);
  const n = (osConstants.errno as Record<string, number>)[name];
  if (n === undefined) bad(`exit=${v}: unknown errno name`);
  return neg ? -n! : n!;
}

function archValue(v: string, r: RuleBuilder): number {
  const m = machineArch();
  let name: ArchName | undefined;
  if (v === 'b64') name = m.b64 ?? bad('arch=b64: this machine has no 64-bit audit arch');
  else if (v === 'b32') name = m.b32 ?? bad('arch=b32: this machine has no 32-bit audit arch');
  else if (v in AUDIT_ARCH) name = v as ArchName;
  else if (/^(0x)?[0-9a-fA-F]+$/.test(v)) {
    const n = Number(v.startsWith('0x') ? v : `0x${v}`);
    const found = (Object.entries(AUDIT_ARCH) as Array<[ArchName, number]>).find(([, x]) => x === n);
    if (!found) bad(`arch=${v}: unknown audit architecture`);
    name = found![0];
  } else bad(`arch=${v}: expected b64, b32 or a name like x86_64`);
  r.arch = name;
  return AUDIT_ARCH[name!];
}

function idValue(v: string, users: boolean, fieldName: string): number {
  if (v === 'unset' || v === '-1') return 0xffffffff;
  if (/^\d+$/.test(v)) return parseInteger(v, fieldName);
  const db = idDatabase();
  const id = (users ? db.users : db.groups).get(v);
  if (id === undefined) bad(`${fieldName}=${v}: no such ${users ? 'user' : 'group'}`);
  return id!;
}

function addFieldPair(r: RuleBuilder, pair: string | undefined): void {
  if (!pair) bad('-F needs name<op>value');
  let op: OpName | undefined;
  let at = -1;
  for (const o of OP_SEARCH_ORDER) {
    at = pair!.indexOf(o);
    if (at > 0) {
      op = o;
      break;
    }
  }
  if (!op) bad(`-F ${pair}: no operator (= != < > <= >= & &=)`);
  const name = pair!.slice(0, at);
  const v = pair!.slice(at + op!.length);
  if (v === '') bad(`-F ${pair}: no value`);
  const field = FIELD_BY_NAME[name];
  if (field === undefined) bad(`-F ${pair}: unknown field "${name}"`);
  const eqOnly = (what: string) => {
    if (op !== '=' && op !== '!=') bad(`-F ${pair}: ${what} takes only = or !=`);
  };
  const opv = OPS[op!];
  const list = listOf(r);

  if (STRING_FIELDS.has(field!)) {
    let s = v;
    if (field === F.path || field === F.dir || field === F.exe) {
      eqOnly(name);
      if (!s.startsWith('/')) bad(`-F ${pair}: ${name} must be an absolute path`);
      if (list !== LISTS.exit && field !== F.exe) bad(`-F ${pair}: ${name} is only valid on the exit list`);
    }
    if (field === F.key) {
      // The kernel matches no key operator: a key is only attached, so only = makes sense.
      if (op !== '=') bad(`-F ${pair}: key takes only =`);
      r.keys.push(s);
      return;
    }
    const str = Buffer.from(s, 'utf8');
    if (str.length > 4096) bad(`-F ${pair}: value too long`);
    return addField(r, { field: field!, op: opv, value: str.length, str });
  }

  let value: number;
  switch (field) {
    case F.arch:
      eqOnly('arch');
      value = archValue(v, r);
      break;
    case F.exit:
      if (list !== LISTS.exit && list !== LISTS.io_uring) bad(`-F ${pair}: exit is only valid on the exit list`);
      value = errnoValue(v);
      break;
    case F.perm: {
      eqOnly('perm');
      if (list !== LISTS.exit) bad(`-F ${pair}: perm is only valid on the exit list`);
      value = permValue(v);
      break;
    }
    case F.filetype:
      if (!(v in FILETYPES)) bad(`-F ${pair}: unknown file type (${Object.keys(FILETYPES).join(', ')})`);
      value = FILETYPES[v]!;
      break;
    case F.msgtype: {
      if (list !== LISTS.exclude && list !== LISTS.user) bad(`-F ${pair}: msgtype is only valid on the exclude and user lists`);
      const n = /^\d+$/.test(v) ? Number(v) : recordTypeNumber(v);
      if (n === undefined) bad(`-F ${pair}: unknown message type`);
      value = n!;
      break;
    }
    case F.fstype: {
      const n = FSTYPES[v] ?? (/^(0x)?[0-9a-fA-F]+$/.test(v) ? parseInteger(v, name) : undefined);
      if (n === undefined) bad(`-F ${pair}: unknown file system type`);
      value = n!;
      break;
    }
    default:
      if (UID_FIELDS.has(field!)) value = idValue(v, true, name);
      else if (GID_FIELDS.has(field!)) value = idValue(v, false, name);
      else value = parseInteger(v, `-F ${name}`);
  }
  addField(r, { field: field!, op: opv, value: value! >>> 0 });
}

function permValue(v: string): number {
  let value = 0;
  for (const c of v) {
    const bit = PERM[c as keyof typeof PERM];
    if (bit === undefined) bad(`permission "${v}": only r, w, x and a`);
    value |= bit!;
  }
  if (value === 0) bad('empty permission');
  return value;
}

function addCompare(r: RuleBuilder, arg: string | undefined): void {
  if (!arg) bad('-C needs field<op>field');
  const m = /^([a-z_]+)(!=|=)([a-z_]+)$/.exec(arg!);
  if (!m) bad(`-C ${arg}: expected field=field or field!=field`);
  const v = compareValue(m![1]!, m![3]!);
  if (v === undefined) bad(`-C ${arg}: these fields cannot be compared`);
  if (listOf(r) !== LISTS.exit) bad(`-C ${arg}: comparisons are only valid on the exit list`);
  addField(r, { field: F.field_compare, op: OPS[m![2] as OpName], value: v! });
}

function trimTrailingSlashes(p: string): string {
  while (p.length > 2 && p.endsWith('/')) p = p.slice(0, -1);
  return p;
}

/** Encodes a finished rule as `struct audit_rule_data` (native endian: little on every arch we build for). */
export function encodeRule(r: RuleBuilder): Buffer {
  let fields = r.fields;
  if (r.keys.length) {
    const key = r.keys.join(AUDIT_KEY_SEPARATOR);
    const kb = Buffer.from(key, 'utf8');
    if (kb.length > AUDIT_MAX_KEY_LEN) bad(`key "${key}" is longer than ${AUDIT_MAX_KEY_LEN} bytes`);
    if (fields.length >= AUDIT_MAX_FIELDS) bad(`more than ${AUDIT_MAX_FIELDS} fields in one rule`);
    fields = [...fields, { field: F.key, op: OPS['='], value: kb.length, str: kb }];
  }
  const strings = fields.filter((f) => f.str).map((f) => f.str!);
  const buflen = strings.reduce((n, s) => n + s.length, 0);
  const buf = Buffer.alloc(RULE_HEADER_BYTES + buflen);
  let o = 0;
  const u32 = (v: number) => {
    buf.writeUInt32LE(v >>> 0, o);
    o += 4;
  };
  u32(r.flags);
  u32(r.action);
  u32(fields.length);
  for (let i = 0; i < AUDIT_BITMASK_SIZE; i++) u32(r.mask[i]!);
  for (let i = 0; i < AUDIT_MAX_FIELDS; i++) u32(fields[i]?.field ?? 0);
  for (let i = 0; i < AUDIT_MAX_FIELDS; i++) u32(fields[i]?.value ?? 0);
  for (let i = 0; i < AUDIT_MAX_FIELDS; i++) u32(fields[i]?.op ?? 0);
  u32(buflen);
  for (const s of strings) {
    s.copy(buf, o);
    o += s.length;
  }
  return buf;
}

/** Compiles one line's arguments into a rule, a control setting, or nothing. */
function compileArgs(args: string[], controls: RuleControls): { op: 'add' | 'delete'; rule: RuleBuilder } | undefined {
  let rule: RuleBuilder | undefined;
  let op: 'add' | 'delete' = 'add';
  let watchPath: string | undefined;
  let perm: number | undefined;
  const pendingSyscalls: string[] = [];
  const pendingFields: Array<['F' | 'C', string]> = [];
  const keys: string[] = [];

  const value = (i: number, opt: string): string => {
    const v = args[i + 1];
    if (v === undefined) bad(`${opt} needs a value`);
    return v!;
  };
  const num = (v: string, opt: string, min: number, max: number) => {
    if (!/^\d+$/.test(v)) bad(`${opt} ${v}: not a number`);
    const n = Number(v);
    if (n < min || n > max) bad(`${opt} ${v}: out of range ${min}..${max}`);
    return n;
  };

  for (let i = 0; i < args.length; i++) {
    let a = args[i]!;
    let inline: string | undefined;
    if (a.startsWith('--') && a.includes('=')) {
      inline = a.slice(a.indexOf('=') + 1);
      a = a.slice(0, a.indexOf('='));
    } else if (/^-[a-zA-Z].+/.test(a) && !a.startsWith('--')) {
      inline = a.slice(2); // getopt-style -Fkey=x
      a = a.slice(0, 2);
    }
    const arg = (opt: string) => {
      if (inline !== undefined) return inline;
      const v = value(i, opt);
      i++;
      return v;
    };
    switch (a) {
      case '-D': controls.deleteAll = true; break;
      case '-c': case '-i': controls.continueOnError = true; break;
      case '-b': controls.backlogLimit = num(arg(a), a, 0, 0x7fffffff); break;
      case '-r': controls.rateLimit = num(arg(a), a, 0, 0x7fffffff); break;
      case '--backlog_wait_time': controls.backlogWaitTime = num(arg(a), a, 0, 600000); break;
      case '-f': {
        const v = arg(a);
        if (v === '2') bad('-f 2 (panic on audit failure) is refused: skafe never sets failure mode 2');
        controls.failure = num(v, a, 0, 1) as 0 | 1;
        break;
      }
      case '-e': {
        const v = arg(a);
        if (v === '2') bad('-e 2 (lock the audit configuration until reboot) is refused: skafe could not restore the kernel state');
        controls.enabled = num(v, a, 0, 1) as 0 | 1;
        break;
      }
      case '-a': case '-A': case '-d': {
        if (rule) bad(`${a}: only one rule per line`);
        const { list, action } = parseListAction(arg(a), a);
        rule = newRule(list, action, a === '-A');
        op = a === '-d' ? 'delete' : 'add';
        break;
      }
      case '-w': case '-W': {
        if (rule) bad(`${a}: only one rule per line`);
        watchPath = arg(a);
        if (!watchPath.startsWith('/')) bad(`${a} ${watchPath}: the path must be absolute`);
        if (watchPath.length >= 4096) bad(`${a}: path too long`);
        rule = newRule(LISTS.exit!, ACTIONS.always!, false);
        rule.watch = true;
        op = a === '-W' ? 'delete' : 'add';
        break;
      }
      case '-p': perm = permValue(arg(a)); break;
      case '-S': pendingSyscalls.push(arg(a)); break;
      case '-F': pendingFields.push(['F', arg(a)]); break;
      case '-C': pendingFields.push(['C', arg(a)]); break;
      case '-k': {
        const k = arg(a);
        if (Buffer.byteLength(k) > AUDIT_MAX_KEY_LEN) bad(`-k ${k}: key longer than ${AUDIT_MAX_KEY_LEN} bytes`);
        keys.push(k);
        break;
      }
      case '-l': case '-s': case '-m': case '-t': case '-q': case '--reset-lost': case '--loginuid-immutable': case '--signal':
        bad(`${a}: not supported in a rules file loaded by skafe`);
        break;
      default:
        bad(`unknown option "${args[i]}"`);
    }
  }

  if (!rule) {
    if (pendingSyscalls.length || pendingFields.length || keys.length || perm !== undefined) bad('-S/-F/-C/-k/-p without -a, -A, -d or -w');
    return undefined;
  }
  // auditctl applies options in command-line order; syscalls and fields were
  // collected above so a -S before -a still finds its list. Their relative
  // order is kept (arch before -S decides the syscall table).
  const ordered: Array<['S' | 'F' | 'C', string]> = [];
  for (let i = 0, s = 0, f = 0; i < args.length; i++) {
    const a = args[i]!.slice(0, 2);
    if (a === '-S') ordered.push(['S', pendingSyscalls[s++]!]);
    else if (a === '-F' || a === '-C') {
      const p = pendingFields[f++]!;
      ordered.push(p);
    }
  }
  if (rule.watch) {
    if (ordered.some(([k]) => k === 'S')) bad('-w cannot be combined with -S');
    const p = trimTrailingSlashes(watchPath!);
    const str = Buffer.from(p, 'utf8');
    rule.mask.fill(0xffffffff);
    rule.syscallAdded = true;
    addField(rule, { field: isDirectory(p) ? F.dir : F.path, op: OPS['='], value: str.length, str });
    addField(rule, { field: F.perm, op: OPS['='], value: perm ?? PERM.r | PERM.w | PERM.x | PERM.a });
    for (const [k, v] of ordered) k === 'F' ? addFieldPair(rule, v) : addCompare(rule, v);
  } else {
    if (perm !== undefined) addFieldPair(rule, `perm=${permString(perm)}`);
    for (const [k, v] of ordered) {
      if (k === 'S') addSyscalls(rule, v);
      else if (k === 'F') addFieldPair(rule, v);
      else addCompare(rule, v);
    }
    // Like auditctl: a rule with no -S gets every syscall bit, except on the
    // task list (checked at fork, no syscall), whose mask stays empty.
    if (!rule.syscallAdded && listOf(rule) !== LISTS.task) rule.mask.fill(0xffffffff);
  }
  rule.keys.push(...keys);
  return { op, rule };
}

function permString(p: number): string {
  return (p & PERM.r ? 'r' : '') + (p & PERM.w ? 'w' : '') + (p & PERM.x ? 'x' : '') + (p & PERM.a ? 'a' : '');
}

// auditctl stats a -w path: a directory becomes a dir= rule (the whole tree), anything else a path= watch.
function isDirectory(p: string): boolean {
  try {
    return statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
  } catch {
    return false;
  }
}

/**
 * Compiles a rules file's text (auditctl -R syntax). The first bad line stops
 * everything: a SkafeError SKAFE_AUDIT_RULE naming the file, line and reason,
 * and nothing from the file is returned.
 */
export function compileRules(text: string, file?: string): CompiledRuleSet {
  const controls: RuleControls = { deleteAll: false, continueOnError: false };
  const rules: CompiledRule[] = [];
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const raw = lines[n]!.replace(/\r$/, '');
    const t = raw.trim();
    if (t === '' || t.startsWith('#')) continue;
    try {
      const r = compileArgs(tokenize(t), controls);
      if (r) rules.push({ op: r.op, line: n + 1, text: t, data: encodeRule(r.rule) });
    } catch (e) {
      if (!(e instanceof RuleLineError)) throw e;
      const where = `${file ?? 'rules'}:${n + 1}`;
      throw new SkafeError('SKAFE_AUDIT_RULE', `${where}: ${e.message} (in "${t}")`, { file, line: n + 1 });
    }
  }
  return { file, controls, rules };
}

export function compileRulesFile(file: string): CompiledRuleSet {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new SkafeError('SKAFE_INPUT_OPEN', `cannot read audit rules file ${file}: ${(e as Error).message}`, { file, cause: e });
  }
  return compileRules(text, file);
}
