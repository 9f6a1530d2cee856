import { readFileSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { SkafeError } from '../errors.js';
import type { CompiledRule, CompiledRuleSet } from '../audit/rules/compile.js';
import { AuditNetlink, type AuditNetlinkOptions } from './audit-netlink.js';
import { AUDIT_ADD_RULE, AUDIT_DEL_RULE, AUDIT_NLGRP_READLOG, AUDIT_SET } from './audit-constants.js';
import { encodeAuditSet, type AuditStatus, type AuditStatusChange } from './audit-status.js';
import { deleteRules, loadRules } from './rule-loader.js';

export type AuditMode = 'unicast' | 'multicast';

export interface AuditSessionOptions {
  mode: AuditMode;
  rules?: CompiledRuleSet;
  /** Kernel settings to apply on top of the rules file's (-b, --backlog_wait_time). */
  backlogLimit?: number;
  backlogWaitTime?: number;
  rcvbuf?: number;
  onRecords: NonNullable<AuditNetlinkOptions['onRecords']>;
  onError(err: Error): void;
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
  /** Rules the kernel had before a -D in our rules file removed them; put back on exit. */
  private displaced: Buffer[] = [];
  private changed: AuditStatusChange = {};
  private restored = false;
  private restoring: Promise<void> | undefined;

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
    live.add(this);
    installExitHooks();

    const rules = this.o.rules;
    if (rules?.controls.deleteAll) {
      this.displaced = await this.control.listRules();
      for (const r of this.displaced) await this.control.deleteRule(r);
    }
    if (rules) this.added = (await loadRules(this.control, rules)).added;

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
    if (Object.keys(want).length) await this.control.setStatus(want);

    if (this.o.mode === 'unicast') {
      this.data = new AuditNetlink({ slots: 32, rcvbuf: this.o.rcvbuf, onRecords: this.o.onRecords, onError: this.o.onError });
      // Registration must come from the socket that is to receive the records.
      this.registered = true;
      await this.data.setStatus({ pid: process.pid });
    } else {
      this.data = new AuditNetlink({ groups: AUDIT_NLGRP_READLOG, slots: 32, rcvbuf: this.o.rcvbuf, onRecords: this.o.onRecords, onError: this.o.onError });
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
    this.restored = true;
    live.delete(this);
    this.data?.close();
    this.control.close();
  }
}
