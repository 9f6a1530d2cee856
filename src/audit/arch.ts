import x86_64 from './syscalls/x86_64.js';
import i386 from './syscalls/i386.js';
import aarch64 from './syscalls/aarch64.js';
import arm from './syscalls/arm.js';
import ppc from './syscalls/ppc.js';
import s390x from './syscalls/s390x.js';
import s390 from './syscalls/s390.js';

/** One audit architecture: the name libaudit prints for it and its syscall table. */
export interface AuditArch {
  name: string;
  syscalls: ReadonlyArray<string | undefined>;
}

// Keyed by the lower-case hex AUDIT_ARCH_* value exactly as SYSCALL's `arch=` prints
// it. Names are libaudit's audit_machine_to_name(audit_elf_to_machine(elf)), so
// they match auditd's ENRICHED `ARCH=` and libauparse (armeb, not arm).
const ARCHES = new Map<string, AuditArch>([
  ['c000003e', { name: 'x86_64', syscalls: x86_64 }],
  ['40000003', { name: 'i386', syscalls: i386 }],
  ['c00000b7', { name: 'aarch64', syscalls: aarch64 }],
  ['40000028', { name: 'armeb', syscalls: arm }],
  ['80000015', { name: 'ppc64', syscalls: ppc }],
  ['c0000015', { name: 'ppc64le', syscalls: ppc }],
  ['14', { name: 'ppc', syscalls: ppc }],
  ['80000016', { name: 's390x', syscalls: s390x }],
  ['16', { name: 's390', syscalls: s390 }],
]);

/** Every architecture as [arch= hex, name, syscall table]: the native interpreter's copy of the tables. */
export function archTable(): Array<[hex: string, name: string, syscalls: ReadonlyArray<string | undefined>]> {
  return [...ARCHES].map(([hex, a]) => [hex, a.name, a.syscalls]);
}

/** The architecture for a raw `arch=` value, or undefined when libaudit does not know it either. */
export function archFromHex(hex: string): AuditArch | undefined {
  return ARCHES.get(hex) ?? ARCHES.get(hex.toLowerCase());
}

/** Syscall name for a decimal `syscall=` value under an `arch=` value; undefined if not in the table. */
export function syscallName(archHex: string, syscallDecimal: string): string | undefined {
  const arch = archFromHex(archHex);
  if (arch === undefined) return undefined;
  const n = Number(syscallDecimal);
  if (!Number.isInteger(n) || n < 0) return undefined;
  return arch.syscalls[n];
}
