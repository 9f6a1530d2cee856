import { Readable } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import { defineStage, BATCH_HWM, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { FrameDecoder, DEFAULT_MAX_FRAME } from '../link/frame.js';
import { MsgType, PROTOCOL_VERSION, PING, encodeJson, encodeAck, decodeHello, decodeBatch, decodeFile, type FileMsg } from '../link/protocol.js';
import { createHash } from 'node:crypto';
import { readPem, requirePem } from '../link/tls-files.js';
import { statusEvent } from '../link/status.js';
import { QUEUE_SERVICE, type Delivery, type QueueService } from '../link/services.js';

// The server's side of the link: many agents at once. Each connection gets a
// window of credits (batches it may send unacknowledged); a credit comes back
// with the ack once the queue has made the batch durable, and is held back
// while the queue pushes back, which is how a slow server slows its agents.

export interface ListenOptions {
  host?: string;
  port?: number;
  tls?: boolean;
  cert?: string;
  key?: string;
  /** CA whose certificates agents must present. */
  ca?: string;
  /** Credits (batches in flight) per agent. Default 32. */
  credits?: number;
  handshake_timeout?: number;
  heartbeat?: number;
  idle_timeout?: number;
  max_connections?: number;
  max_frame?: number;
  /**
   * Bytes read from agents and not yet made durable by the queue (batches the
   * queue has not stored, and frames not yet complete), over all agents, past
   * which the listener stops reading from agents until half of it is free.
   * Default 256 MiB.
   */
  max_pending_bytes?: number;
  status_events?: boolean;
}

interface PendingFetch {
  path: string;
  resolve(r: { bytes: Uint8Array; sha256: string }): void;
  reject(e: Error): void;
  timer: NodeJS.Timeout;
}

// Credits count batches, and a batch may be up to max_frame (16 MiB): 32 credits
// let one agent have 512 MiB in flight, and every agent as much. Credits granted
// cannot be taken back, so the byte bound is kept on the reading side: past
// max_pending_bytes not yet durable, no agent's socket is read (TCP then holds
// the agents back) until the queue has made half of it durable. A frame not yet
// complete counts too: each connection may hold up to max_frame of one, so many
// agents part-way through large batches would otherwise hold many times the
// budget. Those bytes only free up once their frame is complete, so when they
// are all that is left (the queue has nothing more to store) one connection,
// the one holding the most, is read until its frame is complete, then the next.
const MAX_PENDING_BYTES = 256 * 1024 * 1024;

// Before HELLO, a connection may only send HELLO (and pings): a few hundred bytes.
// Its frames are capped well below max_frame, as connections not yet reading as
// agents are not paused when the budget is spent.
const MAX_HELLO_FRAME = 64 * 1024;

// A script's skafe.fetchFile waits this long for the agent, and an agent has at most this many outstanding.
const FETCH_TIMEOUT_MS = 30_000;
const MAX_FETCHES_PER_AGENT = 64;

class AgentConn {
  agent = '';
  /** skafe.fetchFile requests sent to this agent and not yet answered, by request id. */
  readonly fetches = new Map<number, PendingFetch>();
  spool = '';
  owed = 0;
  /** Credits granted and not yet used: a batch beyond them breaks the protocol. */
  window = 0;
  /** Highest offset acknowledged on this connection (every ACK carries it). */
  acked = -1;
  closed = false;
  lastHeard = Date.now();
  /** Bytes of a frame not yet complete, as last counted into the listener's budget. */
  partial = 0;
  constructor(
    readonly sock: net.Socket,
    readonly peer: string,
    private readonly src: ListenSource,
  ) {}
  /** The queue made a batch of `bytes` packed bytes durable, up to `lastOffset`. */
  durable(lastOffset: number, bytes: number): void {
    this.src.released(bytes);
    if (this.closed) return;
    this.acked = Math.max(this.acked, lastOffset);
    if (this.src.creditsHeld()) {
      this.owed++;
      this.sock.write(encodeAck({ acked: this.acked, credits: 0 }));
    } else {
      this.window++;
      this.sock.write(encodeAck({ acked: this.acked, credits: 1 }));
    }
  }
  repay(): void {
    if (this.closed || this.owed === 0) return;
    this.sock.write(encodeAck({ acked: this.acked, credits: this.owed }));
    this.window += this.owed;
    this.owed = 0;
  }
}

export class ListenSource extends Readable {
  private server!: net.Server;
  private readonly conns = new Set<AgentConn>();
  private readonly bySpool = new Map<string, AgentConn>();
  private paused = false;
  private timer: NodeJS.Timeout | undefined;
  /** Packed bytes of batches read and not yet durable (see MAX_PENDING_BYTES). */
  private pendingBytes = 0;
  /** Bytes of frames not yet complete, over all connections. */
  private partialBytes = 0;
  private readingPaused = false;
  /** While reading is paused: the one connection still read, to complete its frame. */
  private finisher: AgentConn | undefined;
  private readonly maxPending: number;

  constructor(
    private readonly opts: ListenOptions,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
    this.maxPending = opts.max_pending_bytes ?? MAX_PENDING_BYTES;
  }

  /** A batch's bytes are the queue's now: read from agents again once half the budget is free. */
  released(bytes: number): void {
    this.pendingBytes -= bytes;
    this.progress();
  }

  /** Connection c's frame not yet complete now holds `partial` bytes; past the budget, stop reading. */
  private account(c: AgentConn, partial: number): void {
    this.partialBytes += partial - c.partial;
    c.partial = partial;
    const held = this.pendingBytes + this.partialBytes;
    const x = this.ctx.counters.extra;
    if (held > (x.pendingBytesPeak ?? 0)) x.pendingBytesPeak = held;
    if (!this.readingPaused && held > this.maxPending) {
      this.readingPaused = true;
      this.ctx.counters.add('readPauses');
      if (this.ctx.counters.firstReport('readPause')) this.ctx.log.warn(`listen: ${held} bytes read from agents and not yet durable (max_pending_bytes ${this.maxPending}): reading from agents paused until the queue catches up (reported once)`);
      for (const a of this.conns) if (a.agent) a.sock.pause();
      this.progress();
    }
  }

  /**
   * While reading is paused: read again once half the budget is free; else, when
   * the queue has nothing left to store and frames not yet complete hold the
   * budget, read the connection holding the most until its frame is complete.
   */
  private progress(): void {
    if (!this.readingPaused) return;
    if (this.pendingBytes + this.partialBytes <= this.maxPending / 2) {
      this.readingPaused = false;
      this.finisher = undefined;
      // what the agents sent meanwhile (pings too) waited in their sockets: not idle
      const now = Date.now();
      for (const c of this.conns) {
        c.lastHeard = now;
        c.sock.resume();
      }
      return;
    }
    if (this.finisher || this.pendingBytes > 0) return;
    let best: AgentConn | undefined;
    for (const c of this.conns) if (c.agent && c.partial > 0 && (!best || c.partial > best.partial)) best = c;
    if (!best) return;
    this.finisher = best;
    this.ctx.counters.add('framesFinished');
    best.lastHeard = Date.now();
    best.sock.resume();
  }

  creditsHeld(): boolean {
    return this.paused;
  }

  address(): net.AddressInfo {
    return this.server.address() as net.AddressInfo;
  }

  async start(): Promise<void> {
    const o = this.opts;
    const stage = `stage ${this.ctx.index} (listen)`;
    if (o.tls === false) {
      this.ctx.log.warn('listen: plaintext (tls=false): agents are not authenticated and events cross the network unencrypted');
      this.server = net.createServer((s) => this.accept(s));
    } else {
      this.server = tls.createServer(
        {
          cert: requirePem(this.ctx.baseDir, o.cert, 'cert', stage),
          key: requirePem(this.ctx.baseDir, o.key, 'key', stage),
          ca: requirePem(this.ctx.baseDir, o.ca, 'ca', stage),
          requestCert: true,
          // Verified in accept() instead, so each refusal is logged with OpenSSL's reason
          // (Node would only show a reset). Nothing is read from an unauthorized socket.
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          handshakeTimeout: (o.handshake_timeout ?? 10) * 1000,
        },
        (s) => this.accept(s),
      );
      this.server.on('tlsClientError', (err: NodeJS.ErrnoException, s: tls.TLSSocket) => {
        this.ctx.counters.add('refused');
        this.ctx.log.warn(`refused ${s.remoteAddress ?? 'a client'}: TLS handshake failed: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' '), { code: 'SKAFE_TLS', reason: err.code ?? err.message });
      });
    }
    this.server.maxConnections = o.max_connections ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (e) => reject(new SkafeError('SKAFE_TLS', `listen: cannot listen on ${o.host ?? '0.0.0.0'}:${o.port ?? 6969}: ${e.message}`, { cause: e })));
      this.server.listen(o.port ?? 6969, o.host ?? '0.0.0.0', () => resolve());
    });
    this.server.on('error', (e) => this.ctx.log.error(`listen: ${e.message}`));
    const idle = (o.idle_timeout ?? 30) * 1000;
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const c of this.conns) {
        // not read while paused: their pings wait in the socket (the one finishing its frame is read)
        if ((!this.readingPaused || c === this.finisher) && now - c.lastHeard > idle) this.close(c, `no frame for ${idle / 1000}s (idle timeout)`);
        else if (c.agent) c.sock.write(PING);
      }
    }, Math.min((o.heartbeat ?? 10) * 1000, idle / 3));
    this.timer.unref();
    this.ctx.signal.addEventListener('abort', () => this.stop(), { once: true });
    this.ctx.log.info(`listening on ${o.host ?? '0.0.0.0'}:${this.address().port}${o.tls === false ? ' (plaintext)' : ' (mutual TLS)'}`);
  }

  private accept(sock: net.Socket): void {
    const peer = `${sock.remoteAddress}:${sock.remotePort}`;
    if (sock instanceof tls.TLSSocket && !sock.authorized) {
      const why = String(sock.authorizationError ?? 'no client certificate');
      const cn = sock.getPeerCertificate()?.subject?.CN;
      this.ctx.counters.add('refused');
      this.ctx.log.warn(`refused ${peer}${cn ? ` (certificate CN ${cn})` : ''}: client certificate not accepted: ${why}`, { code: 'SKAFE_TLS', reason: why });
      sock.destroy();
      return;
    }
    const c = new AgentConn(sock, peer, this);
    this.conns.add(c);
    sock.setNoDelay(true);
    const cn = sock instanceof tls.TLSSocket ? String(sock.getPeerCertificate()?.subject?.CN ?? '') : '';
    // The certificate names the agent (and so its dedup identity); an agent must not pick its own.
    if (sock instanceof tls.TLSSocket && !cn) {
      this.ctx.counters.add('refused');
      this.ctx.log.warn(`refused ${peer}: client certificate has no CN to name the agent by`, { code: 'SKAFE_TLS', reason: 'no CN' });
      sock.destroy();
      return;
    }
    const maxFrame = this.opts.max_frame ?? DEFAULT_MAX_FRAME;
    const decoder = new FrameDecoder(Math.min(maxFrame, MAX_HELLO_FRAME));
    const hsMs = (this.opts.handshake_timeout ?? 10) * 1000;
    const hsTimer = setTimeout(() => this.close(c, `no HELLO within ${hsMs / 1000}s (handshake timeout)`), hsMs);
    let chain = Promise.resolve();
    sock.on('data', (chunk: Buffer) => {
      c.lastHeard = Date.now();
      let frames;
      try {
        frames = decoder.push(chunk);
      } catch (e) {
        return this.close(c, (e as Error).message, true);
      }
      // the finisher's frame is complete: it waits with the others now
      if (frames.length > 0 && c === this.finisher) this.finisher = undefined;
      for (const f of frames) {
        if (f.type === MsgType.PING) continue;
        if (!c.agent) {
          if (f.type !== MsgType.HELLO) return this.close(c, `first frame is type ${f.type}, expected HELLO`, true);
          clearTimeout(hsTimer);
          try {
            const h = decodeHello(f);
            c.agent = cn || h.agent;
            c.spool = h.spool;
            if (!c.agent) throw new SkafeError('SKAFE_PROTOCOL', 'no agent name');
            decoder.setMaxFrame(maxFrame);
          } catch (e) {
            return this.close(c, (e as Error).message, true);
          }
          chain = chain.then(() => this.welcome(c));
          continue;
        }
        if (f.type === MsgType.FILE) {
          try {
            this.fileArrived(c, decodeFile(f));
          } catch (e) {
            return this.close(c, (e as Error).message, true);
          }
          continue;
        }
        if (f.type !== MsgType.BATCH) return this.close(c, `unexpected frame type ${f.type}`, true);
        let b;
        try {
          b = decodeBatch(f);
        } catch (e) {
          return this.close(c, (e as Error).message, true);
        }
        if (--c.window < 0) return this.close(c, 'sent a batch without credit', true);
        const d: Delivery = { agent: c.agent, spool: c.spool, first: b.first, count: b.count, data: b.data, conn: c };
        this.pendingBytes += b.data.length;
        chain = chain.then(() => this.deliver(d));
      }
      this.account(c, decoder.held);
      // an agent that said HELLO while reading was paused, or whose frame was finished
      if (this.readingPaused && c.agent && c !== this.finisher) sock.pause();
      this.progress();
    });
    sock.on('error', (e) => this.close(c, e.message));
    sock.on('close', () => this.close(c, 'connection closed'));
  }

  private async welcome(c: AgentConn): Promise<void> {
    let q: QueueService | undefined;
    for (let i = 0; !(q = this.ctx.services.get(QUEUE_SERVICE) as QueueService | undefined) && i < 200; i++) await new Promise((r) => setTimeout(r, 25));
    if (!q) return this.close(c, 'server has no queue stage', true);
    if (c.closed) return;
    const key = c.agent + '\0' + c.spool;
    const old = this.bySpool.get(key);
    if (old && old !== c) this.close(old, 'replaced by a new connection from the same agent and spool');
    this.bySpool.set(key, c);
    const credits = this.opts.credits ?? 32;
    c.acked = q.highWater(c.agent, c.spool);
    c.window = credits;
    // The interval we need to hear from the agent at: our heartbeat, or a third of our idle timeout if that is shorter.
    const heartbeat = Math.min(this.opts.heartbeat ?? 10, (this.opts.idle_timeout ?? 30) / 3);
    c.sock.write(encodeJson(MsgType.WELCOME, { v: PROTOCOL_VERSION, acked: c.acked, credits, heartbeat }));
    this.ctx.counters.add('connects');
    this.ctx.log.info(`agent ${c.agent} connected from ${c.peer}`, { spool: c.spool });
    if (this.opts.status_events !== false) this.deliver({ agent: c.agent, spool: '', first: 0, count: 1, events: [statusEvent('agent-connected', { peer: c.peer, spool: { id: c.spool } })] });
  }

  private deliver(d: Delivery): void {
    if (this.destroyed) return;
    this.ctx.counters.in += d.count;
    if (!this.push([d])) this.paused = true;
  }

  private nextRid = 1;

  /**
   * skafe.fetchFile for a script rule (registered as the `fetchFile` service):
   * asks the agent that sent `event` (its agent.name and agent.id, set by the
   * queue) for the file over the agent's link. The agent decides what it
   * serves; the sha256 is computed here, over what arrived.
   */
  fetchFile(req: { path: string; event: unknown }): Promise<{ bytes: Uint8Array; sha256: string }> {
    const agent = (req.event as { agent?: { name?: unknown; id?: unknown } } | null)?.agent;
    const name = agent?.name;
    if (typeof name !== 'string') return Promise.reject(new Error('fetchFile: the event names no agent (agent.name): it did not come over an agent link'));
    let c = typeof agent?.id === 'string' ? this.bySpool.get(name + '\0' + agent.id) : undefined;
    if (!c) for (const x of this.bySpool.values()) if (x.agent === name && !x.closed) c = x;
    if (!c || c.closed) return Promise.reject(new Error(`fetchFile: agent ${name} is not connected`));
    if (c.fetches.size >= MAX_FETCHES_PER_AGENT) return Promise.reject(new Error(`fetchFile: ${MAX_FETCHES_PER_AGENT} requests to agent ${name} already waiting`));
    const conn = c;
    const rid = this.nextRid;
    this.nextRid = (this.nextRid % 0xffffffff) + 1;
    this.ctx.counters.add('fetches');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.fetches.delete(rid);
        reject(new Error(`fetchFile: agent ${name} did not answer for ${req.path} within ${FETCH_TIMEOUT_MS / 1000}s`));
      }, FETCH_TIMEOUT_MS);
      conn.fetches.set(rid, { path: req.path, resolve, reject, timer });
      conn.sock.write(encodeJson(MsgType.FETCH, { rid, path: req.path }));
    });
  }

  private fileArrived(c: AgentConn, m: FileMsg): void {
    const p = c.fetches.get(m.rid);
    if (!p) return; // answered after its timeout
    c.fetches.delete(m.rid);
    clearTimeout(p.timer);
    if (!m.ok) {
      this.ctx.counters.add('fetchesRefused');
      p.reject(new Error(`fetchFile: agent ${c.agent} would not send ${p.path}: ${m.error}`));
      return;
    }
    // a copy: the frame's bytes may share the connection's read buffer
    const bytes = Buffer.from(m.data);
    p.resolve({ bytes, sha256: createHash('sha256').update(bytes).digest('hex') });
  }

  private close(c: AgentConn, reason: string, refuse = false): void {
    if (c.closed) return;
    c.closed = true;
    this.conns.delete(c);
    // its frame not yet complete is dropped (the agent sends it again)
    this.partialBytes -= c.partial;
    c.partial = 0;
    if (this.finisher === c) this.finisher = undefined;
    this.progress();
    for (const [rid, p] of c.fetches) {
      c.fetches.delete(rid);
      clearTimeout(p.timer);
      p.reject(new Error(`fetchFile: agent ${c.agent} disconnected before sending ${p.path} (${reason})`));
    }
    if (refuse) {
      this.ctx.log.warn(`refused ${c.agent || c.peer}: ${reason}`, { code: 'SKAFE_PROTOCOL' });
      c.sock.end(encodeJson(MsgType.REFUSE, { reason }));
      setTimeout(() => c.sock.destroy(), 1000).unref();
    } else c.sock.destroy();
    if (c.agent && this.bySpool.get(c.agent + '\0' + c.spool) === c) {
      this.bySpool.delete(c.agent + '\0' + c.spool);
      this.ctx.counters.add('disconnects');
      if (!this.stopped) {
        this.ctx.log.info(`agent ${c.agent} disconnected (${reason})`);
        if (this.opts.status_events !== false) this.deliver({ agent: c.agent, spool: '', first: 0, count: 1, events: [statusEvent('agent-disconnected', { peer: c.peer, reason, spool: { id: c.spool } })] });
      }
    }
  }

  private stopped = false;
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.timer);
    this.server.close();
    for (const c of [...this.conns]) this.close(c, 'server stopping');
    this.push(null);
  }

  override _read(): void {
    if (!this.paused) return;
    this.paused = false;
    for (const c of this.conns) c.repay();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const c of [...this.conns]) this.close(c, 'server stopping');
    this.server?.close();
    cb(err);
  }
}

export default defineStage<ListenOptions>({
  kind: 'source',
  use: 'listen',
  description: 'the server end of the agent link: accepts many agents over mutual TLS and emits their batches for the queue',
  schema: {
    type: 'object',
    properties: {
      host: { type: 'string' },
      port: { type: 'integer', minimum: 0, maximum: 65535 },
      tls: { type: 'boolean' },
      cert: { type: 'string' },
      key: { type: 'string' },
      ca: { type: 'string' },
      credits: { type: 'integer', minimum: 1, maximum: 100000 },
      handshake_timeout: { type: 'number', exclusiveMinimum: 0 },
      heartbeat: { type: 'number', exclusiveMinimum: 0 },
      idle_timeout: { type: 'number', exclusiveMinimum: 0 },
      max_connections: { type: 'integer', minimum: 1 },
      max_frame: { type: 'integer', minimum: 1024 },
      max_pending_bytes: { type: 'integer', minimum: 65536, description: "bytes read from agents and not yet durable (batches, and frames not yet complete) past which no agent is read until the queue catches up (default 256 MiB)" },
      status_events: { type: 'boolean' },
    },
    additionalProperties: false,
  },
  async create(options, ctx) {
    const s = new ListenSource(options, ctx);
    await s.start();
    ctx.services.set('listen', s);
    ctx.services.set('fetchFile', (req: { path: string; event: unknown }) => s.fetchFile(req));
    return s;
  },
});
