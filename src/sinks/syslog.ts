import { Writable } from 'node:stream';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defineStage, BATCH_HWM, type Batch, type StageContext } from '../stage.js';
import { SkafeError } from '../errors.js';
import { DELIVERED, type DeliveredHook } from './serialize.js';

// Events to a syslog daemon as RFC 5424 messages whose MSG is the event as JSON.
//
// Transports:
//  - `local` (default): the system logger's /dev/log. That is a unix DATAGRAM
//    socket, which Node cannot open without a native module, so skafe keeps one
//    long-lived util-linux `logger` process and feeds it a line per message
//    (`--prio-prefix` carries each message's priority; logger builds the
//    RFC 5424 header). No native dependency; logger is on every Linux system.
//  - `unix`: a unix STREAM socket (rsyslog `imptcp path=…`, syslog-ng
//    `unix-stream()`), RFC 6587 octet-counted frames, header built here.
//  - `udp`, `tcp`, `tls`: a remote syslog server, header built here; TCP and
//    TLS use octet counting (RFC 6587 / RFC 5425).

export interface SyslogOptions {
  transport?: 'local' | 'unix' | 'udp' | 'tcp' | 'tls';
  /** local/unix socket path (default /dev/log). */
  path?: string;
  host?: string;
  port?: number;
  /** TLS: CA to verify the server, and an optional client certificate. */
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  facility?: string;
  /** Severity for ordinary items and for `event.kind = alert` items. */
  severity?: string;
  alertseverity?: string;
  appname?: string;
  hostname?: string;
}

const FACILITIES: Record<string, number> = {
  kern: 0, user: 1, mail: 2, daemon: 3, auth: 4, syslog: 5, lpr: 6, news: 7, uucp: 8, cron: 9, authpriv: 10, ftp: 11,
  local0: 16, local1: 17, local2: 18, local3: 19, local4: 20, local5: 21, local6: 22, local7: 23,
};
const SEVERITIES: Record<string, number> = { emerg: 0, alert: 1, crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 };

const schema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    transport: { enum: ['local', 'unix', 'udp', 'tcp', 'tls'], default: 'local' },
    path: { type: 'string', minLength: 1, description: 'socket for local/unix (default /dev/log)' },
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    ca: { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    servername: { type: 'string' },
    facility: { enum: Object.keys(FACILITIES), default: 'local0' },
    severity: { enum: Object.keys(SEVERITIES), default: 'info' },
    alertseverity: { enum: Object.keys(SEVERITIES), default: 'warning' },
    appname: { type: 'string', pattern: '^[!-~]{1,48}$', default: 'skafe' },
    hostname: { type: 'string', pattern: '^[!-~]{1,255}$' },
  },
};

// UDP datagrams above this are refused by many servers; a longer message is
// cut (counted as `truncated`) rather than lost.
const MAX_UDP = 8192;
const RECONNECT_MAX_MS = 5000;

interface Transport {
  /** Send one formatted message; resolves when handed to the OS. */
  send(msgs: SyslogMessage[]): Promise<void>;
  close(): Promise<void>;
}

export function priority(facility: string, severity: string): number {
  return FACILITIES[facility]! * 8 + SEVERITIES[severity]!;
}

export interface SyslogMessage {
  pri: number;
  msgid: string;
  sd: string;
  /** The item as JSON: the MSG part. */
  json: string;
}

type Format = Required<Pick<SyslogOptions, 'facility' | 'severity' | 'alertseverity' | 'appname' | 'hostname'>>;

export function toMessage(item: unknown, o: Format): SyslogMessage {
  const kind = (item as { event?: { kind?: unknown } } | null)?.event?.kind;
  const sev = kind === 'alert' ? o.alertseverity : o.severity;
  const msgid = kind === 'alert' ? 'alert' : kind === 'event' ? 'event' : '-';
  const rule = (item as { rule?: { name?: unknown } } | null)?.rule?.name;
  // 32473 is the private enterprise number RFC 5612 sets aside for examples.
  const sd = typeof rule === 'string' ? `[skafe@32473 rule="${rule.replace(/["\\\]]/g, (c) => '\\' + c)}"]` : '-';
  return { pri: priority(o.facility, sev), msgid, sd, json: JSON.stringify(item) };
}

/** RFC 5424 `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`. */
export function formatRfc5424(m: SyslogMessage, o: Format): string {
  return `<${m.pri}>1 ${new Date().toISOString()} ${o.hostname} ${o.appname} ${process.pid} ${m.msgid} ${m.sd} ${m.json}`;
}

class LoggerProcessTransport implements Transport {
  private child: ChildProcess;
  private exited: string | null = null;
  constructor(
    socketPath: string,
    o: Format,
  ) {
    if (!fs.existsSync(socketPath)) {
      throw new SkafeError('SKAFE_OUTPUT_OPEN', `syslog: no system logger socket at ${socketPath}`, { file: socketPath });
    }
    this.child = spawn('logger', ['--socket', socketPath, '--socket-errors=on', '--rfc5424', '--prio-prefix', '--size', '65536', '-t', o.appname], {
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    let err = '';
    this.child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-500)));
    this.child.on('error', (e) => (this.exited = `cannot run logger: ${e.message}`));
    this.child.on('exit', (code, sig) => (this.exited ??= `logger exited (${sig ?? code}): ${err.trim()}`));
    this.child.stdin!.on('error', () => {});
  }
  send(msgs: SyslogMessage[]): Promise<void> {
    if (this.exited) return Promise.reject(new Error(this.exited));
    return new Promise((resolve, reject) => {
      // logger reads `<PRI>text` lines and writes the RFC 5424 header itself (its MSGID/SD are fixed).
      const text = msgs.map((m) => `<${m.pri}>${m.json}\n`).join('');
      this.child.stdin!.write(text, (e) => (e ? reject(new Error(this.exited ?? e.message)) : resolve()));
    });
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.exited) return resolve();
      this.child.once('exit', () => resolve());
      this.child.stdin!.end();
    });
  }
}

class UdpTransport implements Transport {
  private readonly sock: dgram.Socket;
  constructor(private readonly host: string, private readonly port: number, private readonly ctx: StageContext, private readonly fmt: Format) {
    this.sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  }
  async send(msgs: SyslogMessage[]): Promise<void> {
    for (const m of msgs) {
      let buf = Buffer.from(formatRfc5424(m, this.fmt));
      if (buf.length > MAX_UDP) {
        buf = buf.subarray(0, MAX_UDP);
        this.ctx.counters.add('truncated');
      }
      await new Promise<void>((resolve, reject) => this.sock.send(buf, this.port, this.host, (e) => (e ? reject(e) : resolve())));
    }
  }
  close(): Promise<void> {
    return new Promise((r) => this.sock.close(() => r()));
  }
}

/** TCP, TLS or a unix stream socket, octet-counted; reconnects with backoff while the pipeline waits. */
class StreamTransport implements Transport {
  private sock: net.Socket | null = null;
  private delay = 100;
  constructor(
    private readonly connectFn: () => net.Socket,
    private readonly label: string,
    private readonly ctx: StageContext,
    private readonly fmt: Format,
  ) {}

  private connect(): Promise<net.Socket> {
    return new Promise((resolve, reject) => {
      const s = this.connectFn();
      const ready = s instanceof tls.TLSSocket ? 'secureConnect' : 'connect';
      s.once(ready, () => {
        s.off('error', reject);
        s.on('error', () => {}); // reported by the failing write
        s.on('close', () => {
          if (this.sock === s) this.sock = null;
        });
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  async send(msgs: SyslogMessage[]): Promise<void> {
    const data = msgs.map((m) => formatRfc5424(m, this.fmt)).map((f) => `${Buffer.byteLength(f)} ${f}`).join('');
    for (;;) {
      if (this.ctx.signal.aborted && !this.sock) throw new Error(`syslog ${this.label}: not connected and the pipeline is stopping`);
      try {
        if (!this.sock) {
          this.sock = await this.connect();
          this.delay = 100;
        }
        const s = this.sock;
        await new Promise<void>((resolve, reject) => s.write(data, (e) => (e ? reject(e) : resolve())));
        return;
      } catch (e) {
        this.sock?.destroy();
        this.sock = null;
        this.ctx.counters.add('reconnects');
        if (this.ctx.counters.firstReport('syslog-connect')) this.ctx.log.warn(`syslog ${this.label}: ${(e as Error).message}; retrying`);
        await new Promise((r) => setTimeout(r, this.delay));
        this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
      }
    }
  }

  close(): Promise<void> {
    const s = this.sock;
    this.sock = null;
    if (!s) return Promise.resolve();
    return new Promise((r) => s.end(() => r()));
  }
}

export class SyslogSink extends Writable {
  constructor(
    private readonly transport: Transport,
    private readonly fmt: Format,
    private readonly ctx: StageContext,
  ) {
    super({ objectMode: true, highWaterMark: BATCH_HWM });
  }

  override _write(batch: Batch, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.ctx.counters.in += batch.length;
    this.transport.send(batch.map((item) => toMessage(item, this.fmt))).then(
      () => {
        this.ctx.counters.out += batch.length;
        // Handed to the syslog daemon (or its socket): as far as a sink can see, delivered.
        (this.ctx.services.get(DELIVERED) as DeliveredHook | undefined)?.(batch, this.ctx.name);
        cb();
      },
      (e: Error) => cb(new SkafeError('SKAFE_OUTPUT_WRITE', `syslog: ${e.message}`, { stage: this.ctx.name, cause: e })),
    );
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.transport.close().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.transport.close().then(() => cb(err), () => cb(err));
  }
}

export default defineStage<SyslogOptions>({
  kind: 'sink',
  use: 'syslog',
  description: 'send events as RFC 5424 syslog messages (JSON body) to /dev/log, a unix stream socket, or a remote server over UDP/TCP/TLS',
  schema,
  create(o, ctx) {
    const fmt = {
      facility: o.facility ?? 'local0',
      severity: o.severity ?? 'info',
      alertseverity: o.alertseverity ?? 'warning',
      appname: o.appname ?? 'skafe',
      hostname: o.hostname ?? (os.hostname() || '-'),
    };
    const transport = o.transport ?? 'local';
    const need = (k: 'host' | 'port') => {
      if (o[k] === undefined) throw new SkafeError('SKAFE_DEFINITION_INVALID', `${ctx.name}: transport "${transport}" needs "${k}"`, { stage: ctx.name, field: k });
      return o[k]!;
    };
    const file = (p: string | undefined) => (p === undefined ? undefined : fs.readFileSync(path.resolve(ctx.baseDir, p)));
    let t: Transport;
    switch (transport) {
      case 'local':
        t = new LoggerProcessTransport(o.path ?? '/dev/log', fmt);
        break;
      case 'unix': {
        const p = path.resolve(ctx.baseDir, o.path ?? '/dev/log');
        t = new StreamTransport(() => net.connect(p), p, ctx, fmt);
        break;
      }
      case 'udp':
        t = new UdpTransport(need('host') as string, need('port') as number, ctx, fmt);
        break;
      case 'tcp': {
        const host = need('host') as string;
        const port = need('port') as number;
        t = new StreamTransport(() => net.connect(port, host), `${host}:${port}`, ctx, fmt);
        break;
      }
      case 'tls': {
        const host = need('host') as string;
        const port = need('port') as number;
        let ca: Buffer | undefined, cert: Buffer | undefined, key: Buffer | undefined;
        try {
          ca = file(o.ca);
          cert = file(o.cert);
          key = file(o.key);
        } catch (e) {
          throw new SkafeError('SKAFE_TLS', `${ctx.name}: cannot read TLS file: ${(e as Error).message}`, { stage: ctx.name, cause: e });
        }
        const servername = o.servername ?? (net.isIP(host) ? undefined : host);
        t = new StreamTransport(
          () => tls.connect({ host, port, ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}), ...(servername ? { servername } : {}) }),
          `tls://${host}:${port}`,
          ctx,
          fmt,
        );
        break;
      }
    }
    return new SyslogSink(t, fmt, ctx);
  },
});
