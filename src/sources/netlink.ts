import path from 'node:path';
import { Readable } from 'node:stream';
import { parseRecordLine, type AuditRecord } from '../audit/record.js';
import { compileRulesFile } from '../audit/rules/compile.js';
import { AuditSession, type AuditMode } from '../kernel/audit-session.js';
import { AuditNetlink } from '../kernel/audit-netlink.js';
import { BATCH_HWM, MAX_BATCH, defineStage, type Batch, type StageContext } from '../stage.js';
import { SerialGapTracker } from '../kernel/serial-gaps.js';

export interface NetlinkOptions {
  /** unicast: register as the audit daemon; multicast: listen on the readlog group beside auditd. */
  mode?: AuditMode;
  /** An auditctl-syntax rules file to load at start (and remove at exit). */
  rules?: string;
  /** How often to read the kernel's lost/backlog counters. */
  statusIntervalMs?: number;
  backlogLimit?: number;
  backlogWaitTime?: number;
  /** Socket receive buffer in bytes (SO_RCVBUFFORCE). */
  receiveBuffer?: number;
}

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    mode: { enum: ['unicast', 'multicast'], default: 'unicast' },
    rules: { type: 'string', minLength: 1 },
    statusIntervalMs: { type: 'integer', minimum: 100, maximum: 3600000 },
    backlogLimit: { type: 'integer', minimum: 1, maximum: 1048576 },
    backlogWaitTime: { type: 'integer', minimum: 0, maximum: 600000 },
    receiveBuffer: { type: 'integer', minimum: 65536, maximum: 268435456 },
  },
};

/** Type name of the record skafe emits when the kernel or the socket lost records. */
export const LOSS_RECORD_TYPE = 'SKAFE_KERNEL_LOSS';

/**
 * Records straight from the kernel. Backpressure reaches the socket: when
 * push() returns false we stop polling it, its buffer fills, and the kernel
 * queues (unicast) up to backlog_limit; beyond that the kernel counts loss,
 * which the status poll reports as a loss record so it is never silent.
 */
export class NetlinkSource extends Readable {
  private session: AuditSession | undefined;
  private readonly gaps = new SerialGapTracker();
  private statusTimer: NodeJS.Timeout | undefined;
  private baseLost = -1;
  private lastLost = 0;
  private receiveOverflows = 0;
  private reportedOverflows = 0;
  private ending = false;
  private ended = false;
  private polling = false;

  constructor(
    private readonly ctx: StageContext,
    private readonly o: NetlinkOptions & { mode: AuditMode; statusIntervalMs: number },
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
  }

  async open(rulesFile?: string): Promise<void> {
    const rules = rulesFile ? compileRulesFile(rulesFile) : undefined;
    if (rules && this.o.mode === 'multicast') {
      this.ctx.log.warn(
        `multicast mode with a rules file: ${rulesFile}'s rules and settings go into the kernel rule set the audit daemon also uses, until skafe exits (then they are taken out and the previous settings restored)`,
      );
    }
    this.session = await AuditSession.open({
      mode: this.o.mode,
      rules,
      backlogLimit: this.o.backlogLimit,
      backlogWaitTime: this.o.backlogWaitTime,
      rcvbuf: this.o.receiveBuffer ?? 8 * 1024 * 1024,
      onRecords: (types, texts, enobufs) => this.onRecords(types, texts, enobufs),
      onError: (err) => this.destroy(err),
      onWarning: (m) => this.ctx.log.warn(m),
    });
    this.baseLost = this.session.before.lost;
    this.lastLost = this.baseLost;
    const c = this.ctx.counters;
    c.extra.kernelLost = 0;
    c.extra.kernelBacklog = this.session.before.backlog;
    c.extra.receiveOverflows = 0;
    c.extra.serialGaps = 0;
    this.ctx.log.info(`netlink ${this.o.mode}: ${this.session.loadedRules.length} audit rules loaded`, { rules: rulesFile, portid: this.session.data.portid });
    // Read from the start: a _read() that came while the kernel was being set
    // up found no session and could not push, and the stream waits for that
    // push before asking again. push() returning false pauses us as usual.
    this.polling = true;
    this.session.data.resume();
    this.statusTimer = setInterval(() => void this.pollStatus(), this.o.statusIntervalMs);
    this.statusTimer.unref();
    const onAbort = () => void this.finish();
    if (this.ctx.signal.aborted) onAbort();
    else this.ctx.signal.addEventListener('abort', onAbort, { once: true });
  }

  override _read(): void {
    if (this.ending || !this.session) return;
    if (!this.polling) {
      this.polling = true;
      this.session.data.resume();
    }
  }

  private onRecords(types: number[], texts: string[], enobufs: number): void {
    const c = this.ctx.counters;
    // Records keep coming while the kernel is being given back (the last of
    // them drained from the socket); only a destroyed stream has nowhere to
    // put them: counted as lost, never silent.
    if (this.ended || this.destroyed) {
      if (types.length === 0) return;
      c.extra.droppedAtDestroy = (c.extra.droppedAtDestroy ?? 0) + types.length;
      if (c.firstReport('dropped-at-destroy')) this.ctx.log.warn(`netlink source destroyed with kernel audit records still arriving: ${types.length} dropped (counted in droppedAtDestroy)`, { code: 'SKAFE_KERNEL_LOSS' });
      return;
    }
    if (enobufs) {
      this.receiveOverflows += enobufs;
      c.extra.receiveOverflows = this.receiveOverflows;
    }
    let batch: AuditRecord[] = [];
    let more = true;
    for (let i = 0; i < types.length; i++) {
      const r = parseRecordLine(texts[i]!, types[i]);
      c.in++;
      if ('error' in r) {
        this.ctx.problem({ code: 'SKAFE_MALFORMED_RECORD', message: `kernel record type ${types[i]}: ${r.error}` });
        continue;
      }
      this.gaps.see(r.serial);
      batch.push(r);
      if (batch.length === MAX_BATCH) {
        more = this.emitBatch(batch);
        batch = [];
      }
    }
    if (batch.length) more = this.emitBatch(batch);
    if (!more && this.polling) {
      this.polling = false;
      this.session?.data.pause();
    }
  }

  private emitBatch(batch: Batch<AuditRecord>): boolean {
    this.ctx.counters.out += batch.length;
    return this.push(batch);
  }

  /** Reads lost/backlog; a rise in `lost`, an ENOBUFS or a serial gap becomes a loss record. */
  private async pollStatus(final = false): Promise<void> {
    const s = this.session;
    if (!s || this.destroyed) return;
    let status;
    let conn: AuditNetlink | undefined;
    try {
      // The final count comes after the session gave the kernel back (its sockets are closed).
      if (final) conn = new AuditNetlink();
      status = await (conn ?? s.control).getStatus();
    } catch (e) {
      if (this.ctx.counters.firstReport('status-poll')) this.ctx.log.warn(`reading the kernel audit status failed: ${(e as Error).message}`);
      return;
    } finally {
      conn?.close();
    }
    const c = this.ctx.counters;
    c.extra.kernelBacklog = status.backlog;
    // lost is a u32 the kernel only increments; a reset elsewhere (auditctl --reset-lost) restarts it.
    const delta = status.lost >= this.lastLost ? status.lost - this.lastLost : status.lost;
    this.lastLost = status.lost;
    c.extra.kernelLost = (c.extra.kernelLost ?? 0) + delta;
    const gap = this.gaps.takeMissing();
    c.extra.serialGaps = (c.extra.serialGaps ?? 0) + gap;
    const overflows = this.receiveOverflows - this.reportedOverflows;
    this.reportedOverflows = this.receiveOverflows;
    if (delta > 0 || gap > 0 || overflows > 0) {
      const body = `kernel_lost=${delta} kernel_lost_total=${c.extra.kernelLost} serial_gap=${gap} receive_overflows=${overflows} backlog=${status.backlog} backlog_limit=${status.backlogLimit} mode=${this.o.mode}`;
      if (c.firstReport('kernel-loss')) this.ctx.log.warn(`kernel audit records lost: ${body}`, { code: 'SKAFE_KERNEL_LOSS' });
      this.pushLoss(body);
    }
  }

  private lossSeq = 0;
  private pushLoss(body: string): void {
    if (this.destroyed) return;
    const now = Date.now();
    const sec = Math.floor(now / 1000);
    const msec = now % 1000;
    // A serial no kernel event has (the kernel's start at 1, and we count down from 0xffffffff) keeps the id unique.
    const serial = 0xffffffff - (this.lossSeq++ & 0xffff);
    const id = `${sec}.${String(msec).padStart(3, '0')}:${serial}`;
    const loss: AuditRecord = { type: LOSS_RECORD_TYPE, typeNum: 0, sec, msec, serial, id, body };
    const eoe: AuditRecord = { type: 'EOE', typeNum: 1320, sec, msec, serial, id, body: '' };
    this.ctx.counters.out++;
    this.push([loss, eoe]);
  }

  /** Stop on request: report final loss, give the kernel back, then end the stream. */
  private async finish(): Promise<void> {
    if (this.ending || this.destroyed) return;
    this.ending = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    try {
      await this.session?.restore();
    } catch (e) {
      this.ctx.log.error((e as Error).message);
    }
    await this.pollStatus(true);
    this.ended = true;
    this.push(null);
  }

  override _destroy(err: Error | null, cb: (error?: Error | null) => void): void {
    this.ending = true;
    if (this.statusTimer) clearInterval(this.statusTimer);
    const s = this.session;
    if (!s) return cb(err);
    s.restore().then(
      () => cb(err),
      (e: Error) => {
        this.ctx.log.error(e.message);
        cb(err ?? e);
      },
    );
  }
}

export default defineStage<NetlinkOptions>({
  kind: 'source',
  use: 'netlink',
  description: 'audit records straight from the kernel over NETLINK_AUDIT: unicast (skafe is the audit daemon) or multicast (beside auditd); loads an auditctl rules file and restores the kernel on exit',
  schema,
  async create(options, ctx: StageContext) {
    const src = new NetlinkSource(ctx, { ...options, mode: options.mode ?? 'unicast', statusIntervalMs: options.statusIntervalMs ?? 1000 });
    const rules = options.rules === undefined ? undefined : path.resolve(ctx.baseDir, options.rules);
    await src.open(rules);
    return src;
  },
});
