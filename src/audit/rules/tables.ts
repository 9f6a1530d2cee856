// Constants of the kernel's rule format (<linux/audit.h>) and libaudit's name
// tables (lib/fieldtab.h, flagtab.h, actiontab.h, ftypetab.h), so a rules
// file compiles without auditd installed.

export const AUDIT_BITMASK_SIZE = 64;
export const AUDIT_MAX_FIELDS = 64;
export const AUDIT_MAX_KEY_LEN = 256;
export const AUDIT_KEY_SEPARATOR = '\x01';
/** sizeof(struct audit_rule_data) without the string buffer. */
export const RULE_HEADER_BYTES = 4 * (3 + AUDIT_BITMASK_SIZE + 3 * AUDIT_MAX_FIELDS + 1);

export const AUDIT_FILTER_PREPEND = 0x10;

export const LISTS: Record<string, number> = { user: 0, task: 1, exit: 4, exclude: 5, filesystem: 6, io_uring: 7 };
export const LIST_NAMES: Record<number, string> = Object.fromEntries(Object.entries(LISTS).map(([k, v]) => [v, k]));
export const ACTIONS: Record<string, number> = { never: 0, always: 2 };
export const ACTION_NAMES: Record<number, string> = { 0: 'never', 1: 'possible', 2: 'always' };

export const OPS = {
  '&': 0x08000000,
  '<': 0x10000000,
  '>': 0x20000000,
  '!=': 0x30000000,
  '=': 0x40000000,
  '&=': 0x48000000,
  '<=': 0x50000000,
  '>=': 0x60000000,
} as const;
export type OpName = keyof typeof OPS;
export const OP_NAMES: Record<number, OpName> = Object.fromEntries(Object.entries(OPS).map(([k, v]) => [v, k as OpName]));
/** libaudit looks for operators in this order (two-character ones first). */
export const OP_SEARCH_ORDER: OpName[] = ['!=', '>=', '<=', '&=', '=', '>', '<', '&'];

export const F = {
  pid: 0, uid: 1, euid: 2, suid: 3, fsuid: 4, gid: 5, egid: 6, sgid: 7, fsgid: 8, loginuid: 9, pers: 10, arch: 11, msgtype: 12,
  subj_user: 13, subj_role: 14, subj_type: 15, subj_sen: 16, subj_clr: 17, ppid: 18, obj_user: 19, obj_role: 20, obj_type: 21,
  obj_lev_low: 22, obj_lev_high: 23, loginuid_set: 24, sessionid: 25, fstype: 26,
  devmajor: 100, devminor: 101, inode: 102, exit: 103, success: 104, path: 105, perm: 106, dir: 107, filetype: 108,
  obj_uid: 109, obj_gid: 110, field_compare: 111, exe: 112, saddr_fam: 113,
  a0: 200, a1: 201, a2: 202, a3: 203, key: 210,
} as const;

/** -F names (libaudit fieldtab, with its aliases) → field number. */
export const FIELD_BY_NAME: Record<string, number> = { ...F, auid: F.loginuid, filterkey: F.key, se_user: F.subj_user };
/** field number → the name `auditctl -l` prints. */
export const FIELD_NAMES: Record<number, string> = Object.fromEntries(Object.entries(F).map(([k, v]) => [v, k]));
FIELD_NAMES[F.loginuid] = 'auid';

export const STRING_FIELDS = new Set<number>([
  F.subj_user, F.subj_role, F.subj_type, F.subj_sen, F.subj_clr, F.obj_user, F.obj_role, F.obj_type, F.obj_lev_low, F.obj_lev_high,
  F.path, F.dir, F.key, F.exe,
]);
export const UID_FIELDS = new Set<number>([F.uid, F.euid, F.suid, F.fsuid, F.loginuid, F.obj_uid]);
export const GID_FIELDS = new Set<number>([F.gid, F.egid, F.sgid, F.fsgid, F.obj_gid]);

export const PERM = { x: 1, w: 2, r: 4, a: 8 } as const;

export const FILETYPES: Record<string, number> = { block: 0o060000, character: 0o020000, dir: 0o040000, fifo: 0o010000, file: 0o100000, link: 0o120000, socket: 0o140000 };

/** fstype= names (libaudit fstypetab: filesystem magic numbers). */
export const FSTYPES: Record<string, number> = { debugfs: 0x64626720, tracefs: 0x74726163 };

export const AUDIT_ARCH = { x86_64: 0xc000003e, i386: 0x40000003, aarch64: 0xc00000b7, arm: 0x40000028, armeb: 0x40000028, ppc64: 0x80000015, ppc64le: 0xc0000015, ppc: 0x14, s390x: 0x80000016, s390: 0x16 } as const;
export type ArchName = keyof typeof AUDIT_ARCH;

/** -C comparisons: unordered pair of field names → AUDIT_COMPARE_* (linux/audit.h). */
const COMPARE_PAIRS: Array<[string, string, number]> = [
  ['uid', 'obj_uid', 1], ['gid', 'obj_gid', 2], ['euid', 'obj_uid', 3], ['egid', 'obj_gid', 4], ['auid', 'obj_uid', 5],
  ['suid', 'obj_uid', 6], ['sgid', 'obj_gid', 7], ['fsuid', 'obj_uid', 8], ['fsgid', 'obj_gid', 9], ['uid', 'auid', 10],
  ['uid', 'euid', 11], ['uid', 'fsuid', 12], ['uid', 'suid', 13], ['auid', 'fsuid', 14], ['auid', 'suid', 15],
  ['auid', 'euid', 16], ['euid', 'suid', 17], ['euid', 'fsuid', 18], ['suid', 'fsuid', 19], ['gid', 'egid', 20],
  ['gid', 'fsgid', 21], ['gid', 'sgid', 22], ['egid', 'fsgid', 23], ['egid', 'sgid', 24], ['sgid', 'fsgid', 25],
];
export function compareValue(a: string, b: string): number | undefined {
  const norm = (s: string) => (s === 'loginuid' ? 'auid' : s);
  a = norm(a);
  b = norm(b);
  for (const [x, y, v] of COMPARE_PAIRS) if ((x === a && y === b) || (x === b && y === a)) return v;
  return undefined;
}
export const COMPARE_NAMES: Record<number, [string, string]> = Object.fromEntries(COMPARE_PAIRS.map(([x, y, v]) => [v, [x, y]]));
