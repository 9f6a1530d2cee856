import { Writable } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import os from 'node:os';
import { defineStage, BATCH_HWM, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { FrameDecoder, DEFAULT_MAX_FRAME } from '../link/frame.js';
import { MsgType, PROTOCOL_VERSION, PING, encodeJson, decodeJson, encodeBatch, decodeAck, decodeFetch, encodeFile, type Welcome, type FetchMsg, type FileMsg } from '../link/protocol.js';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Backoff } from '../link/backoff.js';
import { readPem, requirePem } from '../link/tls-files.js';
import { SPOOL_SERVICE, type SpoolService, type SpooledBatch } from '../link/services.js';

// The agent's link to the server. Takes spooled batches, sends them while the
// server has granted credits, keeps the sent-but-unacknowledged ones (bounded by
// the credits) to resend after a reconnect, and reports acks to the spool.

export interface TlsSinkOptions {
  /** "host:port" entries, tried in order for failover. */
  servers: string[];
  /** Default true; false is plaintext, allowed only when set explicitly, with a warning. */
  tls?: boolean;
  cert?: string;
  key?: string;
  /** CA that signs the server's certificate. */
  ca?: string;
  /** Name checked against the server certificate (default: the host). */
  servername?: string;
  /** Sent in HELLO; the server uses the certificate CN when it has one. Default: host name. */
  name?: string;
  connect_timeout?: number;
  handshake_timeout?: number;
  heartbeat?: number;
  idle_timeout?: number;
  backoff_initial?: number;
  backoff_max?: number;
  max_frame?: number;
  /** Serve the server's skafe.fetchFile requests at all (default true). */
  fetch?: boolean;
  /**
   * Paths served besides the default (the executables of events this agent
   * reported): an absolute path, or a directory ending in "/" for everything under it.
   */
  fetch_allow?: string[];
  /** Largest file served (default 8 MiB; the server's frame cap is 16 MiB). */
  fetch_max_bytes?: number;
}

const DEFAULT_FETCH_MAX = 8 * 1024 * 1024;

interface Target {
  host: string;
  port: number;
}

export class TlsLink extends Writable {
  private sock: net.Socket | null = null;
  private ready = false;
  private credits = 0;
  private unsent: SpooledBatch[] = [];
  private inflight: SpooledBatch[] = [];
  private waiting: (() => void) | null = null;
  private attempt = 0;
  private readonly backoff: Backoff;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeatTimer: NodeJS.Timeout | undefined;
  private lastHeard = 0;
  private stopping = false;
  private readonly targets: Target[];
  private readonly secure: tls.ConnectionOptions | null;

  constructor(
    private readonly opts: TlsSinkOptions,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    this.targets = opts.servers.map((s) => parseTarget(s));
    this.backoff = new Backoff((opts.backoff_initial ?? 0.2) * 1000, (opts.backoff_max ?? 10) * 1000);
    if (opts.tls === false) {
      this.secure = null;
      ctx.log.warn('tls link: plaintext (tls=false): events and the agent identity cross the network unencrypted and unauthenticated');
    } else {
      const stage = `stage ${ctx.index} (tls)`;
      this.secure = {
        cert: requirePem(ctx.baseDir, opts.cert, 'cert', stage),
        key: requirePem(ctx.baseDir, opts.key, 'key', stage),
        ca: readPem(ctx.baseDir, opts.ca, 'ca', stage),
        minVersion: 'TLSv1.2',
        rejectUnauthorized: true,
      };
    }
  }

  private get spool(): SpoolService | undefined {
    return this.ctx.services.get(SPOOL_SERVICE) as SpoolService | undefined;
  }

  start(): void {
    this.connect();
    this.beat((this.opts.heartbeat ?? 10) * 1000);
  }

  private beatEvery = Infinity;

  /** PING every `hb` ms (at most a third of our idle timeout), and check the server is alive. */
  private beat(hb: number): void {
    const idle = (this.opts.idle_timeout ?? 30) * 1000;
    const every = Math.min(hb, idle / 3);
    if (every >= this.beatEvery) return;
    this.beatEvery = every;
    clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = setInterval(() => {
      if (!this.sock || !this.ready) return;
      if (Date.now() - this.lastHeard > idle) {
        this.drop(`no frame from the server for ${idle / 1000}s (idle timeout)`);
        return;
      }
      this.sock.write(PING);
    }, every);
    this.heartbeatTimer.unref();
  }

  private connect(): void {
    if (this.stopping || this.destroyed) return;
    const t = this.targets[this.attempt % this.targets.length]!;
    this.attempt++;
    const where = `${t.host}:${t.port}`;
    const handshakeMs = (this.opts.handshake_timeout ?? 10) * 1000;
    const sock: net.Socket = this.secure
      ? tls.connect({ ...this.secure, host: t.host, port: t.port, servername: this.opts.servername ?? (net.isIP(t.host) ? undefined : t.host) })
      : net.connect({ host: t.host, port: t.port });
    this.sock = sock;
    sock.setNoDelay(true);
    // Handlers act only while this socket is the current one: a late event from a
    // dropped socket must not drop its successor.
    const timer = setTimeout(() => this.sock === sock && this.drop(`no welcome from ${where} within ${handshakeMs / 1000}s (handshake timeout)`), handshakeMs);
    // A host that drops SYNs would otherwise hold the agent for the kernel's own connect timeout (minutes).
    const connectMs = (this.opts.connect_timeout ?? 10) * 1000;
    const connectTimer = setTimeout(() => this.sock === sock && this.drop(`no TCP connection to ${where} within ${connectMs / 1000}s (connect timeout)`), connectMs);
    sock.once('connect', () => clearTimeout(connectTimer));
    sock.once('close', () => clearTimeout(connectTimer));
    const decoder = new FrameDecoder(this.opts.max_frame ?? DEFAULT_MAX_FRAME);
    const hello = () => {
      const spool = this.spool;
      if (!spool) return this.drop('no spool service in this pipeline (the tls sink needs a spool stage before it)');
      const next = this.unsent[0]?.first ?? this.inflight[0]?.first ?? spool.nextOffset();
      sock.write(encodeJson(MsgType.HELLO, { v: PROTOCOL_VERSION, agent: this.opts.name ?? os.hostname(), spool: spool.id, next }));
    };
    sock.once(this.secure ? 'secureConnect' : 'connect', hello);
    sock.on('data', (chunk: Buffer) => {
      if (this.sock !== sock) return;
      this.lastHeard = Date.now();
      try {
        for (const f of decoder.push(chunk)) {
          if (this.sock !== sock) break;
          if (f.type === MsgType.WELCOME) {
            clearTimeout(timer);
            this.onWelcome(decodeJson<Welcome>(f, 'WELCOME'), where);
          } else if (f.type === MsgType.ACK) {
            const a = decodeAck(f);
            this.onAck(a.acked, a.credits);
          }
          else if (f.type === MsgType.FETCH) void this.serveFetch(sock, decodeFetch(f));
          else if (f.type === MsgType.REFUSE) this.drop(`server ${where} refused: ${decodeJson<{ reason: string }>(f, 'REFUSE').reason}`);
          else if (f.type !== MsgType.PING) throw new SkafeError('SKAFE_PROTOCOL', `unexpected frame type ${f.type}`);
        }
      } catch (e) {
        this.drop(`protocol error from ${where}: ${(e as Error).message}`);
      }
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (this.sock === sock) this.drop(`${where}: ${e.code ? e.code + ' ' : ''}${e.message}`);
    });
    sock.on('close', () => {
      clearTimeout(timer);
      if (this.sock === sock) this.drop(`${where} closed the connection`);
    });
  }

  /**
   * A server's skafe.fetchFile: the file's bytes, if this agent's policy
   * allows the path. By default only the executable of an event this agent
   * reported (the spool remembers them), plus `fetch_allow`; only regular
   * files (a symlink at the path is refused), at most fetch_max_bytes.
   */
  private async serveFetch(sock: net.Socket, m: FetchMsg): Promise<void> {
    const p = m.path;
    let reply: FileMsg;
    try {
      if (this.opts.fetch === false) throw new Error('this agent serves no files (fetch = false)');
      if (!path.isAbsolute(p) || p.includes('\0') || path.normalize(p) !== p) throw new Error(`not an absolute, normalized path: ${JSON.stringify(p)}`);
      const allow = this.opts.fetch_allow ?? [];
      const allowed = allow.some((a) => (a.endsWith('/') ? p.startsWith(a) : p === a)) || this.spool?.reportedExecutable(p) === true;
      if (!allowed) throw new Error(`${p} is not allowed: this agent serves only the executables of events it reported${allow.length ? ' and its fetch_allow paths' : ''}`);
      const max = this.opts.fetch_max_bytes ?? DEFAULT_FETCH_MAX;
      const fh = await fsp.open(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
      try {
        const st = await fh.stat();
        if (!st.isFile()) throw new Error(`${p} is not a regular file`);
        if (st.size > max) throw new Error(`${p} is ${st.size} bytes, over this agent's fetch_max_bytes (${max})`);
        const data = Buffer.alloc(st.size);
        let off = 0;
        while (off < data.length) {
          const { bytesRead } = await fh.read(data, off, data.length - off, off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        reply = { rid: m.rid, ok: true, data: data.subarray(0, off) };
      } finally {
        await fh.close();
      }
      this.ctx.counters.add('filesServed');
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const why = err.code === 'ELOOP' ? `${p} is a symbolic link` : err.message;
      reply = { rid: m.rid, ok: false, error: why };
      this.ctx.counters.add('fetchesRefused');
      if (this.ctx.counters.firstReport('fetch:' + (err.code ?? why.replace(/^\S+ /, '')))) this.ctx.log.warn(`refused the server's request for a file: ${why}`);
    }
    // Only on the connection that asked: a request id means nothing on the next one.
    if (this.sock === sock && this.ready) sock.write(encodeFile(reply));
  }

  private onWelcome(w: Welcome, where: string): void {
    if (w.v !== PROTOCOL_VERSION) return this.drop(`server ${where} speaks protocol ${w.v}, we speak ${PROTOCOL_VERSION}`);
    this.ready = true;
    this.backoff.reset();
    this.attempt--; // stay on this server
    this.ctx.counters.add('connects');
    this.ctx.log.info(`connected to ${where}`, { acked: w.acked, credits: w.credits });
    this.credits = w.credits;
    // A server that wants to hear from us more often than our heartbeat would (its idle timeout
    // is shorter than ours) gets its rate: otherwise a quiet agent is dropped as idle.
    if (typeof w.heartbeat === 'number' && w.heartbeat > 0) this.beat(w.heartbeat * 1000);
    this.onAck(w.acked, 0);
  }

  private onAck(acked: number, grant: number): void {
    this.credits += grant;
    while (this.inflight.length && last(this.inflight[0]!) <= acked) this.inflight.shift();
    while (this.unsent.length && last(this.unsent[0]!) <= acked) this.unsent.shift();
    if (acked >= 0) this.spool?.ack(acked);
    this.flush();
  }

  private flush(): void {
    const sock = this.sock;
    if (sock && this.ready) {
      while (this.credits > 0 && this.unsent.length) {
        const b = this.unsent.shift()!;
        sock.write(encodeBatch(b));
        this.inflight.push(b);
        this.credits--;
        this.ctx.counters.out += b.count;
      }
    }
    if (this.unsent.length === 0 && this.waiting) {
      const cb = this.waiting;
      this.waiting = null;
      cb();
    }
  }

  /** Lose the connection: everything in flight is resent after the next welcome. */
  private drop(reason: string): void {
    const sock = this.sock;
    if (!sock) return;
    this.sock = null;
    const wasReady = this.ready;
    this.ready = false;
    this.credits = 0;
    sock.on('error', () => {});
    sock.destroy();
    this.unsent = this.inflight.concat(this.unsent);
    this.inflight = [];
    if (this.stopping) return;
    this.ctx.counters.add(wasReady ? 'disconnects' : 'connectFailures');
    const delay = this.backoff.next();
    const msg = `${wasReady ? 'disconnected' : 'cannot connect'}: ${reason}; retrying in ${(delay / 1000).toFixed(1)}s`;
    if (wasReady || this.ctx.counters.firstReport('connect:' + reason.replace(/\d+(\.\d+)?s/g, ''))) this.ctx.log.warn(msg);
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connect(), delay);
  }

  override _write(chunk: SpooledBatch[], _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    for (const b of chunk) this.unsent.push(b);
    this.ctx.counters.in += chunk.reduce((n, b) => n + b.count, 0);
    this.waiting = cb;
    this.flush();
  }

  override _final(cb: (e?: Error | null) => void): void {
    // The spool ends its output only when everything is acknowledged (or it gave up at stop).
    this.stopping = true;
    this.shutdown();
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.stopping = true;
    this.shutdown();
    cb(err);
  }

  private shutdown(): void {
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeatTimer);
    const s = this.sock;
    this.sock = null;
    if (s) s.end();
  }
}

const last = (b: SpooledBatch) => b.first + b.count - 1;

function parseTarget(s: string): Target {
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(s);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new SkafeError('SKAFE_DEFINITION_INVALID', `tls: server "${s}" is not host:port`, { field: 'servers' });
  return { host: m[1]!, port: Number(m[2]) };
}

export default defineStage<TlsSinkOptions>({
  kind: 'sink',
  use: 'tls',
  description: 'the agent link: mutual-TLS connection to a skafe server, credit flow control, acks back to the spool, reconnect and failover',
  schema: {
    type: 'object',
    properties: {
      servers: { type: 'array', items: { type: 'string' }, minItems: 1 },
      tls: { type: 'boolean' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      servername: { type: 'string' },
      name: { type: 'string' },
      connect_timeout: { type: 'number', exclusiveMinimum: 0 },
      handshake_timeout: { type: 'number', exclusiveMinimum: 0 },
      heartbeat: { type: 'number', exclusiveMinimum: 0 },
      idle_timeout: { type: 'number', exclusiveMinimum: 0 },
      backoff_initial: { type: 'number', exclusiveMinimum: 0 },
      backoff_max: { type: 'number', exclusiveMinimum: 0 },
      max_frame: { type: 'integer', minimum: 1024 },
      fetch: { type: 'boolean' },
      fetch_allow: { type: 'array', items: { type: 'string', pattern: '^/' } },
      fetch_max_bytes: { type: 'integer', minimum: 0, maximum: 15 * 1024 * 1024 },
    },
    required: ['servers'],
    additionalProperties: false,
  },
  create(options, ctx) {
    const link = new TlsLink(options, ctx);
    link.start();
    return link;
  },
});
