import { readFileSync, writeFileSync, renameSync, unlinkSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { constants as osConstants } from 'node:os';
import { SkafeError } from '../errors.js';
import type { CompiledRule, CompiledRuleSet } from '../audit/rules/compile.js';
import { AuditNetlink, type AuditNetlinkOptions } from './audit-netlink.js';
import { AUDIT_ADD_RULE, AUDIT_DEL_RULE, AUDIT_NLGRP_READLOG, AUDIT_SET } from './audit-constants.js';
import { encodeAuditSet, type AuditStatus, type AuditStatusChange } from './audit-status.js';
import { deleteRules, loadRules } from './rule-loader.js';

export type AuditMode = 'unicast' | 'multicast';

// What a session changed, written to disk while it runs, so that a run killed
// with SIGKILL (no exit hook runs) is cleaned up by the next one: it undoes the
// dead run's changes before taking its own "before" picture. Without this a
// restart after a crash would take the dead run's rules for the machine's own.
const JOURNAL_DIR = process.env.SKAFE_RUN_DIR ?? '/run/skafe';
const journalFile = (mode: AuditMode) => path.join(JOURNAL_DIR, `audit-session-${mode}.json`);
const ownStart = startTime(process.pid);

interface Journal {
  pid: number;
  /** The process's start time (/proc/PID/stat), so a pid the kernel has reused is not taken for it. */
  start?: string;
  changed: AuditStatusChange;
  registered: boolean;
  added: string[];
  displaced: string[];
}

export interface AuditSessionOptions {
  mode: AuditMode;
  rules?: CompiledRuleSet;
  /** Kernel settings to apply on top of the rules file's (-b, --backlog_wait_time). */
  backlogLimit?: number;
  backlogWaitTime?: number;
  rcvbuf?: number;
  onRecords: NonNullable<AuditNetlinkOptions['onRecords']>;
  onError(err: Error): void;
  /** Told when a previous run's leftovers are cleaned up. */
  onWarning?(message: string): void;
}

/** Sessions not yet restored: the process exit hook restores them synchronously. */
const live = new Set<AuditSession>();
let hooksInstalled = false;

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // 'exit' also runs after an uncaught exception; only synchronous work is possible there.
  process.on('exit', () => {
    for (const s of live) s.restoreNow();
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      // If someone else (skafe run) handles the signal, it stops the pipeline
      // and the stream's destroy restores the kernel. Alone, we restore now and
      // die of the same signal, as the default action would. (A library that
      // also stands back when not alone, like signal-exit, leaves the signal
      // to us both: the caller must then handle it.)
      if (process.listenerCount(sig) > 1) return;
      for (const s of live) s.restoreNow();
      process.removeListener(sig, onSignal);
      // Node restores the default action once the last listener is gone, but
      // not necessarily before a signal sent right now: re-raise on the next
      // turn, and exit with the shell's code for it should that still be caught.
      setImmediate(() => process.kill(process.pid, sig));
      setTimeout(() => process.exit(128 + (osConstants.signals[sig] ?? 15)), 200);
    };
    process.on(sig, onSignal);
  }
}

function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** The journal's process still runs (the same one, not a later process given its pid). */
function journalOwnerAlive(j: Journal): boolean {
  if (!alive(j.pid)) return false;
  return j.start === undefined || startTime(j.pid) === j.start;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * skafe's hold on the kernel audit subsystem: registration (unicast) or the
 * readlog subscription (multicast), the rules it loaded and the settings it
 * changed, and how to put all of it back. `restore()` is the normal path
 * (awaits the kernel's acks); `restoreNow()` is the synchronous one for
 * process exit (the kernel applies each request inside sendto()).
 */
export class AuditSession {
  readonly control: AuditNetlink;
  data!: AuditNetlink;
  before!: AuditStatus;
  private registered = false;
  private added: CompiledRule[] = [];
  /** Rules the kernel had before a -D, -d or -W in our rules file removed them; put back on exit. */
  private displaced: Buffer[] = [];
  private changed: AuditStatusChange = {};
  private restored = false;
  private restoring: Promise<void> | undefined;
  /** Another live process whose session journal for this mode exists. */
  private holder: number | undefined;

  private constructor(private readonly o: AuditSessionOptions) {
    this.control = new AuditNetlink();
  }

  static async open(o: AuditSessionOptions): Promise<AuditSession> {
    const s = new AuditSession(o);
    try {
      await s.start();
      return s;
    } catch (e) {
      await s.restore().catch(() => undefined);
      throw e;
    }
  }

  get registeredPid(): boolean {
    return this.registered;
  }

  get loadedRules(): readonly CompiledRule[] {
    return this.added;
  }

  private async start(): Promise<void> {
    await this.recoverFromCrash();
    this.before = await this.control.getStatus();
    if (this.before.enabled === 2) throw new SkafeError('SKAFE_NETLINK', 'the kernel audit configuration is locked (enabled 2): skafe cannot register or load rules until reboot');
    if (this.o.mode === 'unicast' && this.before.pid !== 0 && alive(this.before.pid)) {
      const name = processName(this.before.pid);
      throw new SkafeError(
        'SKAFE_AUDIT_DAEMON_BUSY',
        `process ${this.before.pid}${name ? ` (${name})` : ''} is registered as the kernel audit daemon; ` +
          'run skafe as its plugin instead (the stdin source under auditd/audisp) or use {"use":"netlink","mode":"multicast"} beside it',
        { pid: this.before.pid },
      );
    }
    // One session per mode: a second would write over the first's journal (so
    // a crash of the first could no longer be undone) and, started while the
    // first is still putting the kernel back, would take half-restored
    // settings for the machine's own and "restore" them at its exit.
    if (this.holder !== undefined) {
      throw new SkafeError(
        'SKAFE_AUDIT_DAEMON_BUSY',
        `another skafe (pid ${this.holder}) holds the kernel audit session (${this.o.mode} mode), running or still putting the kernel back; one session per mode at a time (journal ${journalFile(this.o.mode)})`,
        { pid: this.holder },
      );
    }
    live.add(this);
    installExitHooks();

    const rules = this.o.rules;
    if (rules?.controls.deleteAll) {
      this.displaced = await this.control.listRules();
      for (const r of this.displaced) await this.control.deleteRule(r);
    }
    if (rules) {
      const loaded = await loadRules(this.control, rules);
      this.added = loaded.added;
      this.displaced.push(...loaded.deleted);
    }

    const want: AuditStatusChange = {};
    const c = rules?.controls;
    if (c?.backlogLimit !== undefined) want.backlogLimit = c.backlogLimit;
    if (c?.backlogWaitTime !== undefined) want.backlogWaitTime = c.backlogWaitTime;
    if (c?.rateLimit !== undefined) want.rateLimit = c.rateLimit;
    if (c?.failure !== undefined) want.failure = c.failure;
    if (this.o.backlogLimit !== undefined) want.backlogLimit = this.o.backlogLimit;
    if (this.o.backlogWaitTime !== undefined) want.backlogWaitTime = this.o.backlogWaitTime;
    const enabled = c?.enabled ?? 1;
    if (enabled !== this.before.enabled) want.enabled = enabled;
    for (const k of Object.keys(want) as Array<keyof AuditStatusChange>) {
      if (want[k] === this.before[k]) delete want[k];
      else (this.changed as Record<string, number>)[k] = this.before[k];
    }
    this.writeJournal();
    if (Object.keys(want).length) await this.control.setStatus(want);

    if (this.o.mode === 'unicast') {
      this.data = new AuditNetlink({ slots: 32, rcvbuf: this.o.rcvbuf, onRecords: this.o.onRecords, onError: this.o.onError });
      // Registration must come from the socket that is to receive the records.
      this.registered = true;
      this.writeJournal();
      await this.data.setStatus({ pid: process.pid });
    } else {
      this.data = new AuditNetlink({ groups: AUDIT_NLGRP_READLOG, slots: 32, rcvbuf: this.o.rcvbuf, onRecords: this.o.onRecords, onError: this.o.onError });
    }
    this.writeJournal();
  }

  private writeJournal(): void {
    const j: Journal = {
      pid: process.pid,
      start: ownStart,
      changed: this.changed,
      registered: this.registered,
      added: this.added.map((r) => r.data.toString('base64')),
      displaced: this.displaced.map((b) => b.toString('base64')),
    };
    try {
      mkdirSync(JOURNAL_DIR, { recursive: true, mode: 0o700 });
      const f = journalFile(this.o.mode);
      writeFileSync(f + '.tmp', JSON.stringify(j), { mode: 0o600 });
      renameSync(f + '.tmp', f);
    } catch {
      // Not fatal: only recovery after a SIGKILL depends on it.
    }
  }

  private dropJournal(): void {
    try {
      const f = journalFile(this.o.mode);
      const j = JSON.parse(readFileSync(f, 'utf8')) as Journal;
      if (j.pid === process.pid) unlinkSync(f);
    } catch {
      /* none */
    }
  }

  /** A previous run left a journal and is dead: undo what it changed. */
  private async recoverFromCrash(): Promise<void> {
    let j: Journal;
    try {
      j = JSON.parse(readFileSync(journalFile(this.o.mode), 'utf8')) as Journal;
    } catch {
      return;
    }
    if (j.pid === process.pid) return;
    if (journalOwnerAlive(j)) {
      this.holder = j.pid;
      return;
    }
    this.o.onWarning?.(`a previous skafe (pid ${j.pid}) did not exit cleanly: undoing its kernel audit changes first (${j.added.length} rules, settings ${JSON.stringify(j.changed)})`);
    const status = await this.control.getStatus();
    if (Object.keys(j.changed).length) await this.control.setStatus(j.changed).catch(() => undefined);
    if (j.registered && status.pid === j.pid) await this.control.setStatus({ pid: 0 }).catch(() => undefined);
    for (const r of [...j.added].reverse()) await this.control.deleteRule(Buffer.from(r, 'base64')).catch(() => undefined);
    for (const r of j.displaced) await this.control.addRule(Buffer.from(r, 'base64')).catch(() => undefined);
    try {
      unlinkSync(journalFile(this.o.mode));
    } catch {
      /* gone */
    }
  }

  /** Put the kernel back as it was. Idempotent. */
  restore(): Promise<void> {
    if (this.restored) return Promise.resolve();
    this.restoring ??= this.doRestore();
    return this.restoring;
  }

  private async doRestore(): Promise<void> {
    const errors: Error[] = [];
    const attempt = async (f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (e) {
        errors.push(e as Error);
      }
    };
    // Settings first: while backlog_limit is still ours (tiny, in a test) the
    // records our own changes cause could be lost after the final loss count.
    if (Object.keys(this.changed).length) await attempt(() => this.control.setStatus(this.changed));
    this.changed = {};
    if (this.registered) {
      // Any socket of this process may unregister it; the control socket is
      // used because the data socket may be paused by backpressure.
      await attempt(() => this.control.setStatus({ pid: 0 }));
      this.registered = false;
    }
    errors.push(...(await deleteRules(this.control, this.added)));
    this.added = [];
    for (const r of this.displaced) await attempt(() => this.control.addRule(r));
    this.displaced = [];
    // Unregistered (or, multicast, about to leave the group): what the kernel
    // sent before is still in the receive buffer, up to megabytes of it when
    // backpressure had paused reading. Hand it on before the socket closes.
    this.data?.drain();
    this.finish();
    if (errors.length) throw new SkafeError('SKAFE_NETLINK', `restoring the kernel audit state: ${errors.map((e) => e.message).join('; ')}`, { cause: errors[0] });
  }

  /** Synchronous restore for process exit: each send is applied by the kernel before it returns. */
  restoreNow(): void {
    if (this.restored) return;
    if (Object.keys(this.changed).length) this.control.sendNow(AUDIT_SET, encodeAuditSet(this.changed));
    if (this.registered) this.control.sendNow(AUDIT_SET, encodeAuditSet({ pid: 0 }));
    for (const r of [...this.added].reverse()) this.control.sendNow(AUDIT_DEL_RULE, r.data);
    for (const r of this.displaced) this.control.sendNow(AUDIT_ADD_RULE, r);
    this.registered = false;
    this.added = [];
    this.displaced = [];
    this.changed = {};
    this.finish();
  }

  private finish(): void {
    this.dropJournal();
    this.restored = true;
    live.delete(this);
    this.data?.close();
    this.control.close();
  }
}
