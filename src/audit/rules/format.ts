import { constants as osConstants } from 'node:os';
import x86_64 from '../syscalls/x86_64.js';
import i386 from '../syscalls/i386.js';
import aarch64 from '../syscalls/aarch64.js';
import arm from '../syscalls/arm.js';
import { machineArch } from './compile.js';
import {
  ACTION_NAMES, AUDIT_ARCH, AUDIT_BITMASK_SIZE, AUDIT_FILTER_PREPEND, AUDIT_KEY_SEPARATOR, AUDIT_MAX_FIELDS, COMPARE_NAMES, F,
  FIELD_NAMES, FILETYPES, LIST_NAMES, LISTS, OP_NAMES, PERM, RULE_HEADER_BYTES, STRING_FIELDS, UID_FIELDS, GID_FIELDS,
} from './tables.js';

const errnoNames: Record<number, string> = Object.create(null);
for (const [name, n] of Object.entries(osConstants.errno)) errnoNames[n] ??= name;
const tables: Record<string, ReadonlyArray<string | undefined>> = { x86_64, i386, aarch64, arm, armeb: arm };

/**
 * A kernel rule (`struct audit_rule_data`, as AUDIT_LIST_RULES returns it) in
 * auditctl syntax, close to what `auditctl -l` prints.
 */
export function formatRule(buf: Buffer): string {
  if (buf.length < RULE_HEADER_BYTES) return `# short rule (${buf.length} bytes)`;
  const u = (i: number) => buf.readUInt32LE(i * 4);
  const flags = u(0);
  const list = flags & ~AUDIT_FILTER_PREPEND;
  const action = u(1);
  const n = Math.min(u(2), AUDIT_MAX_FIELDS);
  const mask = Array.from({ length: AUDIT_BITMASK_SIZE }, (_, i) => u(3 + i));
  let off = RULE_HEADER_BYTES;
  const fields = Array.from({ length: n }, (_, i) => {
    const field = u(3 + AUDIT_BITMASK_SIZE + i);
    const value = u(3 + AUDIT_BITMASK_SIZE + AUDIT_MAX_FIELDS + i);
    const op = OP_NAMES[u(3 + AUDIT_BITMASK_SIZE + 2 * AUDIT_MAX_FIELDS + i)] ?? '?';
    let str: string | undefined;
    if (STRING_FIELDS.has(field)) {
      str = buf.toString('utf8', off, off + value);
      off += value;
    }
    return { field, value, op, str };
  });
  // Every syscall bit except the class bits the kernel keeps at the top.
  const allSyscalls = mask.slice(0, AUDIT_BITMASK_SIZE - 1).every((w) => w === 0xffffffff);

  const key = fields.find((f) => f.field === F.key);
  const keyText = key?.str ? key.str.split(AUDIT_KEY_SEPARATOR).map((k) => ` -k ${k}`).join('') : '';
  const watch = fields[0];
  if (list === LISTS.exit && action === 2 && allSyscalls && watch && (watch.field === F.path || watch.field === F.dir) && watch.op === '=' &&
      fields[1]?.field === F.perm && fields.length === (key ? 3 : 2)) {
    return `-w ${watch.str} -p ${perm(fields[1].value)}${keyText}`;
  }

  const parts = [`${flags & AUDIT_FILTER_PREPEND ? '-A' : '-a'} ${ACTION_NAMES[action] ?? action},${LIST_NAMES[list] ?? list}`];
  const archField = fields.find((f) => f.field === F.arch);
  const archName = archField ? (Object.entries(AUDIT_ARCH).find(([, v]) => v === archField.value)?.[0] ?? machineArch().own) : machineArch().own;
  let syscallsDone = list === LISTS.task;
  const syscalls = () => {
    syscallsDone = true;
    if (allSyscalls) return list === LISTS.exit || list === LISTS.io_uring ? ' -S all' : '';
    const table = tables[archName] ?? [];
    const names: string[] = [];
    for (let nr = 0; nr < (AUDIT_BITMASK_SIZE - 1) * 32; nr++) if (mask[nr >>> 5]! & (1 << (nr & 31))) names.push(table[nr] ?? String(nr));
    return names.length ? ` -S ${names.join(',')}` : '';
  };
  if (!archField) parts.push(syscalls());
  for (const f of fields) {
    if (f.field === F.key) continue;
    parts.push(' ' + formatField(f, archName));
    if (f.field === F.arch && !syscallsDone) parts.push(syscalls());
  }
  return parts.join('') + (key?.str ? key.str.split(AUDIT_KEY_SEPARATOR).map((k) => ` -F key=${k}`).join('') : '');
}

function perm(v: number): string {
  return (v & PERM.r ? 'r' : '') + (v & PERM.w ? 'w' : '') + (v & PERM.x ? 'x' : '') + (v & PERM.a ? 'a' : '');
}

function formatField(f: { field: number; value: number; op: string; str?: string }, archName: string): string {
  const name = FIELD_NAMES[f.field] ?? `field${f.field}`;
  if (f.field === F.field_compare) {
    const pair = COMPARE_NAMES[f.value];
    return pair ? `-C ${pair[0]}${f.op}${pair[1]}` : `-C ${f.value}`;
  }
  let v: string;
  if (f.str !== undefined) v = f.str;
  else if (f.field === F.arch) v = archName === machineArch().b64 ? 'b64' : archName === machineArch().b32 ? 'b32' : archName;
  else if (f.field === F.exit) {
    const s = f.value | 0;
    v = s < 0 && errnoNames[-s] ? `-${errnoNames[-s]}` : String(s);
  } else if (f.field === F.perm) v = perm(f.value);
  else if (f.field === F.filetype) v = Object.entries(FILETYPES).find(([, x]) => x === f.value)?.[0] ?? String(f.value);
  else if ((UID_FIELDS.has(f.field) || GID_FIELDS.has(f.field)) && f.value === 0xffffffff) v = 'unset';
  else if (f.field >= F.a0 && f.field <= F.a3) v = '0x' + f.value.toString(16).toUpperCase();
  else v = String(f.value);
  return `-F ${name}${f.op}${v}`;
}
