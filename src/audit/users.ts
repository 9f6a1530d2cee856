import { readFileSync, statSync } from 'node:fs';

// uid/gid → name from the host's user database, the way libauparse resolves
// names (it reads the same files through getpwuid). Read once and cached; the
// files are re-read at most every RELOAD_MS when their mtime changed, so a user
// added while skafe runs is found without a stat per lookup.
const RELOAD_MS = 30_000;
// Bounded: a user database larger than this (LDAP dumps into /etc/passwd) keeps
// only the first MAX_ENTRIES entries; ids past the cap resolve to no name.
const MAX_ENTRIES = 100_000;

interface Db {
  file: string;
  names: Map<number, string>;
  mtimeMs: number;
  checkedAt: number;
  lookups: number;
}

const dbs = new Map<string, Db>();

function load(file: string): Db {
  const names = new Map<number, string>();
  let mtimeMs = -1;
  try {
    mtimeMs = statSync(file).mtimeMs;
    const text = readFileSync(file, 'utf8');
    let start = 0;
    while (start < text.length && names.size < MAX_ENTRIES) {
      let end = text.indexOf('\n', start);
      if (end < 0) end = text.length;
      // name:passwd:id:...
      const c1 = text.indexOf(':', start);
      const c2 = c1 < 0 ? -1 : text.indexOf(':', c1 + 1);
      const c3 = c2 < 0 ? -1 : text.indexOf(':', c2 + 1);
      if (c1 > start && c3 > c2 && c3 <= end && text.charCodeAt(start) !== 35 /* # */) {
        const id = Number(text.slice(c2 + 1, c3));
        // First entry wins, as getpwuid returns the first match.
        if (Number.isInteger(id) && !names.has(id)) names.set(id, text.slice(start, c1));
      }
      start = end + 1;
    }
  } catch {
    // No database (minimal containers): every id resolves to no name.
  }
  return { file, names, mtimeMs, checkedAt: Date.now(), lookups: 0 };
}

// Lookups between two clock reads: the reload check costs a clock read, and
// there are about ten lookups per event. (A change is seen after RELOAD_MS and
// at most CHECK_EVERY lookups.)
const CHECK_EVERY = 1024;

function db(file: string): Db {
  const d = dbs.get(file);
  if (d === undefined) return fresh(file);
  if (++d.lookups < CHECK_EVERY) return d;
  d.lookups = 0;
  return fresh(file);
}

/** The database of `file`, loaded or, when RELOAD_MS have passed and its mtime changed, reloaded. */
function fresh(file: string): Db {
  let d = dbs.get(file);
  if (d === undefined) {
    d = load(file);
    dbs.set(file, d);
    return d;
  }
  const now = Date.now();
  if (now - d.checkedAt > RELOAD_MS) {
    d.checkedAt = now;
    let mtimeMs = -1;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch {}
    if (mtimeMs !== d.mtimeMs) {
      d = load(file);
      dbs.set(file, d);
    }
  }
  return d;
}

/**
 * The uid and gid tables as lookups see them now (reloaded when due), for the
 * native interpreter, which gets a copy whenever one of them is a new Map.
 */
export function nameTables(): { users: ReadonlyMap<number, string>; groups: ReadonlyMap<number, string> } {
  return { users: fresh(passwdFile).names, groups: fresh(groupFile).names };
}

let passwdFile = '/etc/passwd';
let groupFile = '/etc/group';

/** Point lookups at other files (tests). */
export function setUserDatabase(passwd: string, group: string): void {
  passwdFile = passwd;
  groupFile = group;
  dbs.clear();
}

/**
 * Name for a decimal uid text. `unset` for 4294967295 (-1, "no audit user"), as
 * libauparse prints it; undefined when the host has no such user.
 */
export function userName(uid: string): string | undefined {
  if (uid === '4294967295' || uid === '-1') return 'unset';
  const n = Number(uid);
  if (!Number.isInteger(n)) return undefined;
  return db(passwdFile).names.get(n);
}

/** Name for a decimal gid text; undefined when the host has no such group. */
export function groupName(gid: string): string | undefined {
  if (gid === '4294967295' || gid === '-1') return 'unset';
  const n = Number(gid);
  if (!Number.isInteger(n)) return undefined;
  return db(groupFile).names.get(n);
}
