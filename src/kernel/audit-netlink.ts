import { constants as osConstants } from 'node:os';
import { nativeAudit, type NativeAuditSocket } from './addon.js';
import {
  AUDIT_ADD_RULE,
  AUDIT_DEL_RULE,
  AUDIT_FIRST_USER_MSG,
  AUDIT_GET,
  AUDIT_LIST_RULES,
  AUDIT_SET,
  NLM_F_ACK,
  NLMSG_DONE,
  NLMSG_ERROR,
} from './audit-constants.js';
import { decodeAuditStatus, encodeAuditSet, type AuditStatus, type AuditStatusChange } from './audit-status.js';

const errnoNames: Record<number, string> = Object.create(null);
for (const [name, n] of Object.entries(osConstants.errno)) errnoNames[n] ??= name;

const typeNames: Record<number, string> = { [AUDIT_GET]: 'AUDIT_GET', [AUDIT_SET]: 'AUDIT_SET', [AUDIT_ADD_RULE]: 'AUDIT_ADD_RULE', [AUDIT_DEL_RULE]: 'AUDIT_DEL_RULE', [AUDIT_LIST_RULES]: 'AUDIT_LIST_RULES' };

/** An error shaped like Node's system errors: errno (negative), code, syscall. */
export function kernelError(errno: number, syscall: string, message?: string): NodeJS.ErrnoException {
  const code = errnoNames[errno] ?? `E${errno}`;
  const err = new Error(message ?? `${syscall} failed: ${code}`) as NodeJS.ErrnoException;
  err.errno = -errno;
  err.code = code;
  err.syscall = syscall;
  return err;
}

interface Pending {
  type: number;
  replies: Buffer[];
  resolve(replies: Buffer[]): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export interface AuditNetlinkOptions {
  /** Multicast groups to bind (AUDIT_NLGRP_READLOG for a read-only listener). */
  groups?: number;
  /** recvmmsg slots per read (16 KiB each): bounds work per poll tick. */
  slots?: number;
  /** SO_RCVBUF(FORCE) bytes; 0 keeps the default. */
  rcvbuf?: number;
  /** Audit records (type ≥ 1100) as they arrive, and receive-side ENOBUFS counts (kernel-side loss). */
  onRecords?(types: number[], texts: string[], enobufs: number): void;
  /** A receive error other than EAGAIN/ENOBUFS: the socket stops polling. */
  onError?(err: Error): void;
  requestTimeoutMs?: number;
}

// Pending requests are bounded: a caller that floods requests gets an error
// instead of an ever-growing map.
const MAX_PENDING = 256;

/**
 * One NETLINK_AUDIT socket with request/reply matching by sequence number.
 * Polling runs while records are wanted (`resume()`) or a request waits for its
 * reply, so a control-only socket does not keep the event loop alive.
 */
export class AuditNetlink {
  private readonly sock: NativeAuditSocket;
  private readonly pending = new Map<number, Pending>();
  private seq = 1;
  private wantRecords = false;
  private polling = false;
  private closed = false;
  private readonly timeoutMs: number;

  constructor(private readonly opts: AuditNetlinkOptions = {}) {
    const { AuditSocket } = nativeAudit();
    this.sock = new AuditSocket(opts.groups ?? 0, opts.slots ?? (opts.onRecords ? 32 : 2), opts.rcvbuf ?? 0);
    this.timeoutMs = opts.requestTimeoutMs ?? 3000;
  }

  get portid(): number {
    return this.sock.portid;
  }

  /** Start delivering records (the stream wants data). */
  resume(): void {
    this.wantRecords = true;
    this.updatePolling();
  }

  /** Stop reading records (push() returned false): the socket buffer and then the kernel hold them. */
  pause(): void {
    this.wantRecords = false;
    this.updatePolling();
  }

  private updatePolling(): void {
    if (this.closed) return;
    const want = this.wantRecords || this.pending.size > 0;
    if (want && !this.polling) {
      this.sock.start((flat, enobufs, err) => this.onMessages(flat, enobufs, err));
      this.polling = true;
    } else if (!want && this.polling) {
      this.sock.stop();
      this.polling = false;
    }
  }

  private onMessages(flat: Array<number | string | Buffer>, enobufs: number, err?: NodeJS.ErrnoException): void {
    const types: number[] = [];
    const texts: string[] = [];
    for (let i = 0; i + 2 < flat.length; i += 3) {
      const type = flat[i] as number;
      const seq = flat[i + 1] as number;
      const payload = flat[i + 2]!;
      if (type >= AUDIT_FIRST_USER_MSG && typeof payload === 'string') {
        types.push(type);
        texts.push(payload);
      } else {
        this.onControl(type, seq, payload as Buffer);
      }
    }
    if ((types.length > 0 || enobufs > 0) && this.opts.onRecords) this.opts.onRecords(types, texts, enobufs);
    if (err) {
      this.sock.stop();
      this.polling = false;
      for (const p of this.pending.values()) this.settle(p, err);
      this.pending.clear();
      this.opts.onError?.(err);
    }
    this.updatePolling();
  }

  private onControl(type: number, seq: number, payload: Buffer): void {
    const p = this.pending.get(seq);
    if (!p) return; // a reply to a request that timed out, or an ack we did not ask for
    if (type === NLMSG_ERROR) {
      const code = payload.length >= 4 ? payload.readInt32LE(0) : 0;
      if (code !== 0) return this.finish(seq, p, kernelError(-code, `netlink ${typeNames[p.type] ?? p.type}`));
      // A plain ack: enough for SET/ADD/DEL; GET and LIST wait for their data.
      if (p.type !== AUDIT_GET && p.type !== AUDIT_LIST_RULES) this.finish(seq, p);
      return;
    }
    if (type === NLMSG_DONE) return this.finish(seq, p);
    if (p.replies.length < 4096) p.replies.push(payload);
    if (p.type === AUDIT_GET && type === AUDIT_GET) this.finish(seq, p);
  }

  private finish(seq: number, p: Pending, err?: Error): void {
    this.pending.delete(seq);
    this.settle(p, err);
  }

  private settle(p: Pending, err?: Error): void {
    clearTimeout(p.timer);
    if (err) p.reject(err);
    else p.resolve(p.replies);
  }

  /** Sends a request and waits (asynchronously) for its ack or replies, with a timeout so it cannot hang. */
  request(type: number, payload?: Buffer): Promise<Buffer[]> {
    if (this.closed) return Promise.reject(kernelError(9, `netlink ${typeNames[type] ?? type}`, 'the audit netlink socket is closed'));
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new Error('too many audit netlink requests in flight'));
    const seq = this.nextSeq();
    const wantsAck = type !== AUDIT_GET && type !== AUDIT_LIST_RULES;
    return new Promise<Buffer[]>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(kernelError(62 /* ETIME */, `netlink ${typeNames[type] ?? type}`, `no reply from the kernel to ${typeNames[type] ?? type} within ${this.timeoutMs} ms`));
        this.updatePolling();
      }, this.timeoutMs);
      const p: Pending = { type, replies: [], resolve, reject, timer };
      this.pending.set(seq, p);
      try {
        this.updatePolling();
        this.sock.send(type, wantsAck ? NLM_F_ACK : 0, seq, payload);
      } catch (e) {
        this.finish(seq, p, e as Error);
        this.updatePolling();
      }
    });
  }

  /**
   * Fire-and-forget send for the synchronous exit path: the kernel handles the
   * request inside sendto(), so it is done when this returns. Errors are returned, not thrown.
   */
  sendNow(type: number, payload?: Buffer): Error | undefined {
    if (this.closed) return kernelError(9, 'sendto');
    try {
      this.sock.send(type, 0, this.nextSeq(), payload);
      return undefined;
    } catch (e) {
      return e as Error;
    }
  }

  private nextSeq(): number {
    this.seq = this.seq >= 0x7fffffff ? 1 : this.seq + 1;
    return this.seq;
  }

  async getStatus(): Promise<AuditStatus> {
    const replies = await this.request(AUDIT_GET);
    if (!replies[0]) throw kernelError(61 /* ENODATA */, 'netlink AUDIT_GET', 'the kernel sent no audit status');
    return decodeAuditStatus(replies[0]);
  }

  async setStatus(change: AuditStatusChange): Promise<void> {
    await this.request(AUDIT_SET, encodeAuditSet(change));
  }

  listRules(): Promise<Buffer[]> {
    return this.request(AUDIT_LIST_RULES);
  }

  async addRule(rule: Buffer): Promise<void> {
    await this.request(AUDIT_ADD_RULE, rule);
  }

  async deleteRule(rule: Buffer): Promise<void> {
    await this.request(AUDIT_DEL_RULE, rule);
  }

  /**
   * Delivers at once, through onRecords, whatever the socket holds, even while
   * paused: for shutdown, once the kernel no longer sends to this socket,
   * before closing it would throw those records away.
   */
  drain(): void {
    if (this.closed) return;
    let flat: Array<number | string | Buffer>;
    let enobufs: number;
    try {
      [flat, enobufs] = this.sock.drain();
    } catch (e) {
      this.opts.onError?.(e as NodeJS.ErrnoException);
      return;
    }
    this.onMessages(flat, enobufs);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) this.settle(p, kernelError(9, `netlink ${typeNames[p.type] ?? p.type}`, 'the audit netlink socket was closed'));
    this.pending.clear();
    this.sock.close();
    this.polling = false;
  }
}
