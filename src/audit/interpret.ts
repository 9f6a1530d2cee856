// Records of one kernel event → one ECS event, laid out as Auditbeat's auditd
// module lays it out. docs/event-shape.md documents every field;
// test/audit/interpret-oracle.test.ts checks the result against libauparse.
// Runs once per event on the hot path: no regex, tables built once.
import { posix } from 'node:path';
import type { AuditRecord } from './record.js';
import type { AuditEvent } from './event.js';
import { scanFields, rawFieldList, rawValueBytes, FieldShape, lastScanWasExact, makePicker, type Fields, type ProblemSink } from './fields.js';
import { archFromHex } from './arch.js';
import { userName, groupName } from './users.js';
import { decodeSockaddr, type SocketAddress } from './sockaddr.js';

export type { ProblemSink } from './fields.js';

const UNSET_ID = '4294967295';

// SYSCALL fields that become ECS fields; every other SYSCALL field goes to auditd.data.
const SYSCALL_MAPPED: ReadonlySet<string> = new Set([
  'arch', 'syscall', 'pid', 'ppid', 'auid', 'uid', 'gid', 'euid', 'suid', 'fsuid', 'egid', 'sgid', 'fsgid',
  'ses', 'comm', 'exe', 'key',
  // auditd's ENRICHED names (kept in auditd.records; used for the ECS names)
  'ARCH', 'SYSCALL', 'AUID', 'UID', 'GID', 'EUID', 'SUID', 'FSUID', 'EGID', 'SGID', 'FSGID',
]);

// Fields of a non-SYSCALL primary record (USER_*, DAEMON_*, CONFIG_CHANGE, …) that become ECS fields.
const OTHER_MAPPED: ReadonlySet<string> = new Set([
  'pid', 'ppid', 'uid', 'auid', 'ses', 'comm', 'exe', 'res', 'AUID', 'UID',
]);

// Auditbeat's direction rule: the address of a sending/connecting syscall is the
// destination, of a receiving/binding one the source.
const DESTINATION_SYSCALLS: ReadonlySet<string> = new Set(['connect', 'sendto', 'sendmsg', 'sendmmsg']);
const SOURCE_SYSCALLS: ReadonlySet<string> = new Set(['bind', 'accept', 'accept4', 'recvfrom', 'recvmsg', 'recvmmsg']);

// Field layouts remembered per record type, see FieldShape. Bounded: past
// MAX_SHAPES distinct types, the others share one (slower, still correct).
const MAX_SHAPES = 512;
const shapes = new Map<string, FieldShape>();
const sharedShape = new FieldShape();

function shapeFor(type: string): FieldShape {
  let s = shapes.get(type);
  if (s === undefined) {
    if (shapes.size >= MAX_SHAPES) return sharedShape;
    shapes.set(type, (s = new FieldShape()));
  }
  return s;
}

// auditd.data pickers by SYSCALL layout (shape and its version): the SYSCALL
// fields that are not mapped to ECS, copied by a generated literal.
interface DataPicker {
  version: number;
  pick: (f: Fields) => Record<string, unknown>;
}
const dataPickers = new WeakMap<FieldShape, DataPicker>();

function dataPicker(shape: FieldShape): DataPicker['pick'] {
  let p = dataPickers.get(shape);
  if (p === undefined || p.version !== shape.version) {
    const names = shape.names.filter((n) => !SYSCALL_MAPPED.has(n));
    p = { version: shape.version, pick: makePicker(['arch', 'syscall', ...names]) };
    dataPickers.set(shape, p);
  }
  return p.pick;
}

// "2026-11-24T15:16:19." for the last second seen: events come in time order,
// so one Date per second instead of one per event.
let isoSec = -1;
let isoPrefix = '';

// The largest time a Date holds (ms); a header past it cannot be written as ISO-8601.
const MAX_DATE_MS = 8.64e15;

function isoTimestamp(sec: number, msec: number): string | undefined {
  if (sec * 1000 + msec > MAX_DATE_MS) return undefined;
  if (msec > 999) return new Date(sec * 1000 + msec).toISOString();
  if (sec !== isoSec) {
    isoPrefix = new Date(sec * 1000).toISOString().slice(0, 20);
    isoSec = sec;
  }
  return isoPrefix + (msec < 10 ? '00' : msec < 100 ? '0' : '') + msec + 'Z';
}

interface Named {
  id: string;
  name?: string;
}

/**
 * Interpret the records of one event (at least one; all sharing one
 * `msg=audit(…)` id, in arrival order). Never throws on bad field text: a
 * malformed value is kept as written and reported to `onProblem` (coalesce
 * counts them).
 */
export function interpret(records: AuditRecord[], onProblem?: ProblemSink): AuditEvent {
  const first = records[0]!;
  const recs: Array<{ type: string; fields: Fields }> = new Array(records.length);
  let syscall: Fields | undefined;
  // the SYSCALL record's layout, when it matched its shape exactly (fast auditd.data copy)
  let syscallShape: FieldShape | undefined;
  let execves: number[] | undefined;
  let proctitle: Fields | undefined;
  let cwd: Fields | undefined;
  let sockaddr: Fields | undefined;
  let paths: Fields[] | undefined;
  let node: string | undefined;

  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const fields = scanFields(r.body, r.enriched, r.type === 'EXECVE', shapeFor(r.type), onProblem);
    recs[i] = { type: r.type, fields };
    if (node === undefined && r.node !== undefined) node = r.node;
    switch (r.type) {
      case 'SYSCALL':
        if (syscall === undefined) {
          syscall = fields;
          // exact layout built by its factory: the names are the fields, no repeats
          if (lastScanWasExact()) {
            const shape = shapeFor('SYSCALL');
            if (shape.factory !== undefined) syscallShape = shape;
          }
        }
        break;
      case 'EXECVE':
        (execves ??= []).push(i);
        break;
      case 'PROCTITLE':
        proctitle ??= fields;
        break;
      case 'CWD':
        cwd ??= fields;
        break;
      case 'SOCKADDR':
        sockaddr ??= fields;
        break;
      case 'PATH':
        (paths ??= []).push(fields);
        break;
    }
  }

  let timestamp = isoTimestamp(first.sec, first.msec);
  if (timestamp === undefined) {
    onProblem?.(`event ${first.id}: time out of range, @timestamp set to the epoch`);
    timestamp = '1970-01-01T00:00:00.000Z';
  }
  const ev: Record<string, any> = { '@timestamp': timestamp };
  const event: Record<string, any> = { id: first.id, kind: 'event', module: 'auditd', outcome: 'unknown' };
  // skafe's own loss report (netlink source): a metric, so loss is never silent and never mistaken for activity.
  if (first.type === 'SKAFE_KERNEL_LOSS') {
    event.kind = 'metric';
    event.action = 'kernel-loss';
  }
  ev.event = event;
  if (node !== undefined) ev.host = { name: node };
  let data: Record<string, any> = {};
  const auditd: Record<string, any> = { sequence: first.serial };
  const process: Record<string, any> = {};
  let syscallName: string | undefined;

  if (syscall !== undefined) {
    const s = syscall;
    const arch = s.arch !== undefined ? archFromHex(s.arch) : undefined;
    if (syscallShape !== undefined) data = dataPicker(syscallShape)(s);
    else {
      data.arch = undefined;
      data.syscall = undefined;
      for (const k in s) if (!SYSCALL_MAPPED.has(k)) data[k] = s[k];
    }
    const archName = s.ARCH ?? arch?.name ?? s.arch;
    if (archName !== undefined) data.arch = archName;
    else delete data.arch;
    if (s.syscall !== undefined) {
      syscallName = s.SYSCALL ?? arch?.syscalls[Number(s.syscall)] ?? s.syscall;
      data.syscall = syscallName;
    } else delete data.syscall;
    if (s.success === 'yes') event.outcome = 'success';
    else if (s.success === 'no') event.outcome = 'failure';
    setPid(process, s.pid);
    if (s.ppid !== undefined) {
      const ppid = Number(s.ppid);
      if (Number.isInteger(ppid)) process.parent = { pid: ppid };
    }
    if (s.comm !== undefined) process.name = s.comm;
    if (s.exe !== undefined) process.executable = s.exe;
    if (s.ses !== undefined) auditd.session = s.ses === UNSET_ID ? 'unset' : s.ses;
    const user: Record<string, any> = {};
    if (s.uid !== undefined) Object.assign(user, named(s.uid, s.UID, false));
    if (s.gid !== undefined) user.group = named(s.gid, s.GID, true);
    if (s.euid !== undefined || s.egid !== undefined) {
      const eff: Record<string, any> = s.euid !== undefined ? named(s.euid, s.EUID, false) : {};
      if (s.egid !== undefined) eff.group = named(s.egid, s.EGID, true);
      user.effective = eff;
    }
    if (s.suid !== undefined || s.sgid !== undefined) {
      const saved: Record<string, any> = s.suid !== undefined ? named(s.suid, s.SUID, false) : {};
      if (s.sgid !== undefined) saved.group = named(s.sgid, s.SGID, true);
      user.saved = saved;
    }
    if (s.fsuid !== undefined || s.fsgid !== undefined) {
      const fs: Record<string, any> = s.fsuid !== undefined ? named(s.fsuid, s.FSUID, false) : {};
      if (s.fsgid !== undefined) fs.group = named(s.fsgid, s.FSGID, true);
      user.filesystem = fs;
    }
    if (s.auid !== undefined) user.audit = named(s.auid, s.AUID, false);
    ev.user = user;
    const key = s.key;
    if (key !== undefined && key !== '(null)') ev.tags = key.indexOf('\x01') < 0 ? [key] : key.split('\x01');
  } else if (recs.length > 0) {
    // A userspace or daemon record on its own: map its common fields.
    const p = recs[0]!.fields;
    for (const k in p) if (!OTHER_MAPPED.has(k)) data[k] = p[k];
    event.outcome = resultOutcome(p.res);
    setPid(process, p.pid);
    if (p.ppid !== undefined) {
      const ppid = Number(p.ppid);
      if (Number.isInteger(ppid)) process.parent = { pid: ppid };
    }
    if (p.comm !== undefined) process.name = p.comm;
    if (p.exe !== undefined) process.executable = p.exe;
    if (p.ses !== undefined) auditd.session = p.ses === UNSET_ID ? 'unset' : p.ses;
    if (p.uid !== undefined || p.auid !== undefined) {
      const user: Record<string, any> = p.uid !== undefined ? named(p.uid, p.UID, false) : {};
      if (p.auid !== undefined) user.audit = named(p.auid, p.AUID, false);
      ev.user = user;
    }
  }

  if (execves !== undefined) interpretExecve(records, recs, execves, process);
  if (proctitle?.proctitle !== undefined) process.title = proctitle.proctitle.replaceAll('\0', ' ');
  if (cwd?.cwd !== undefined) process.working_directory = cwd.cwd;
  if (Object.keys(process).length > 0) ev.process = process;

  if (paths !== undefined) {
    // item order (the kernel writes them in order; sort in case a relay did not)
    if (paths.length > 1) paths.sort((a, b) => Number(a.item) - Number(b.item));
    auditd.paths = paths.map((p) => ({ ...p }));
    const file = fileObject(paths, cwd?.cwd);
    if (file !== undefined) ev.file = file;
  }

  if (sockaddr?.saddr !== undefined) {
    const sock = decodeSockaddr(sockaddr.saddr);
    if (sock === undefined) {
      onProblem?.(`field saddr: cannot decode socket address (${sockaddr.saddr.slice(0, 40)})`);
    } else {
      data.socket = { ...sock, saddr: sockaddr.saddr };
      if (syscallName !== undefined) {
        const ecs = endpoint(sock);
        if (ecs !== undefined) {
          if (DESTINATION_SYSCALLS.has(syscallName)) ev.destination = ecs;
          else if (SOURCE_SYSCALLS.has(syscallName)) ev.source = ecs;
        }
      }
    }
  }

  auditd.data = data;
  auditd.records = recs;
  ev.auditd = auditd;
  return ev as AuditEvent;
}

function setPid(process: Record<string, any>, pid: string | undefined): void {
  if (pid === undefined) return;
  const n = Number(pid);
  if (Number.isInteger(n)) process.pid = n;
}

/** `{ id, name }` for a uid/gid: the ENRICHED name when auditd wrote one, else the host's. */
function named(id: string, enriched: string | undefined, group: boolean): Named {
  let name: string | undefined;
  if (enriched !== undefined) {
    // auditd writes unknown(3001) for an id it could not resolve: that is no name
    if (!enriched.startsWith('unknown(')) name = enriched;
  } else {
    name = group ? groupName(id) : userName(id);
  }
  return name === undefined ? { id } : { id, name };
}

function resultOutcome(res: string | undefined): 'success' | 'failure' | 'unknown' {
  switch (res) {
    case 'success':
    case 'yes':
    case '1':
      return 'success';
    case 'failed':
    case 'fail':
    case 'failure':
    case 'no':
    case '0':
      return 'failure';
    default:
      return 'unknown';
  }
}

/**
 * process.args from the EXECVE record(s): `a0 a1 …`, possibly spread over several
 * EXECVE records, and long arguments split as `aN_len=… aN[0]=… aN[1]=…`.
 */
function interpretExecve(
  records: AuditRecord[],
  recs: Array<{ type: string; fields: Fields }>,
  indexes: number[],
  process: Record<string, any>,
): void {
  let argc = -1;
  let split = false;
  for (const i of indexes) {
    const f = recs[i]!.fields;
    if (argc < 0 && f.argc !== undefined) argc = Number(f.argc);
    if (!split && records[i]!.body.indexOf('_len=') >= 0) split = true;
  }
  const args: string[] = [];
  if (!split) {
    if (indexes.length === 1) {
      const f = recs[indexes[0]!]!.fields;
      for (let n = 0; ; n++) {
        const v = f['a' + n];
        if (v === undefined) break;
        args.push(v);
      }
    } else {
      for (let n = 0; ; n++) {
        const name = 'a' + n;
        let v: string | undefined;
        for (const i of indexes) if ((v = recs[i]!.fields[name]) !== undefined) break;
        if (v === undefined) break;
        args.push(v);
      }
    }
  } else {
    // Slow path, long arguments: join the pieces as bytes (a UTF-8 character can straddle two).
    const pieces = new Map<number, Buffer[]>();
    const whole = new Map<number, string>();
    for (const i of indexes) {
      for (const [name, raw] of rawFieldList(records[i]!.body)) {
        if (name.charCodeAt(0) !== 97 /* a */) continue;
        const br = name.indexOf('[');
        const numText = br < 0 ? name.slice(1) : name.slice(1, br);
        if (!isDecimal(numText)) continue; // argc, aN_len
        const n = Number(numText);
        if (br < 0) {
          whole.set(n, rawValueBytes(raw).toString('utf8'));
        } else {
          let list = pieces.get(n);
          if (list === undefined) pieces.set(n, (list = []));
          list.push(rawValueBytes(raw));
        }
      }
    }
    for (let n = 0; ; n++) {
      const w = whole.get(n);
      if (w !== undefined) args.push(w);
      else {
        const list = pieces.get(n);
        if (list === undefined) break;
        args.push(Buffer.concat(list).toString('utf8'));
      }
    }
  }
  process.args = args;
  process.args_count = argc >= 0 && Number.isInteger(argc) ? argc : args.length;
  process.command_line = args.join(' ');
}

function isDecimal(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/**
 * ECS `file` from the PATH records: the first path that is not a PARENT (the
 * object the syscall acted on), else the first; relative names join the CWD.
 */
function fileObject(paths: Fields[], cwd: string | undefined): Record<string, any> | undefined {
  let p = paths[0]!;
  for (const q of paths) {
    if (q.nametype !== 'PARENT') {
      p = q;
      break;
    }
  }
  const name = p.name;
  if (name === undefined || name === '(null)') return undefined;
  const file: Record<string, any> = { path: name.charCodeAt(0) !== 47 && cwd !== undefined && cwd.charCodeAt(0) === 47 ? posix.join(cwd, name) : name };
  if (p.inode !== undefined) file.inode = p.inode;
  if (p.dev !== undefined) file.device = p.dev;
  if (p.mode !== undefined && isOctal(p.mode)) file.mode = (parseInt(p.mode, 8) & 0o7777).toString(8).padStart(4, '0');
  if (p.ouid !== undefined) {
    file.uid = p.ouid;
    const owner = p.OUID !== undefined ? (p.OUID.startsWith('unknown(') ? undefined : p.OUID) : userName(p.ouid);
    if (owner !== undefined) file.owner = owner;
  }
  if (p.ogid !== undefined) {
    file.gid = p.ogid;
    const group = p.OGID !== undefined ? (p.OGID.startsWith('unknown(') ? undefined : p.OGID) : groupName(p.ogid);
    if (group !== undefined) file.group = group;
  }
  return file;
}

function isOctal(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 55) return false;
  }
  return true;
}

/** ECS source/destination for a socket address: ip and port, or a unix path as address. */
function endpoint(s: SocketAddress): Record<string, any> | undefined {
  if (s.addr !== undefined) return s.port !== undefined ? { address: s.addr, ip: s.addr, port: s.port } : { address: s.addr, ip: s.addr };
  if (s.path !== undefined && s.path !== '') return { address: s.path };
  return undefined;
}
