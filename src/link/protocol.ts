import { SkafeError } from '../errors.js';
import { encodeFrame, type Frame } from './frame.js';

// The agent ↔ server messages. Control messages are small JSON; batches carry
// the spool's compressed payload as is, so neither side re-encodes events.
//
//   agent → server  HELLO   {v, agent, spool, next}          first frame, within the handshake timeout
//   server → agent  WELCOME {v, acked, credits, heartbeat}   acked: highest offset durable for this spool
//   agent → server  BATCH   u48 first offset, u32 count, packed events (codec.ts)
//   server → agent  ACK     u48 highest durable offset, u32 credits granted back
//   either          PING    empty; any frame counts as life for the idle timeout
//   server → agent  REFUSE  {reason}, then the server closes
//   server → agent  FETCH   {rid, path}   a script rule's skafe.fetchFile(path)
//   agent → server  FILE    u32 rid, u8 1, the file's bytes | u32 rid, u8 0, the reason (UTF-8)

export const PROTOCOL_VERSION = 1;

export const MsgType = {
  HELLO: 1,
  WELCOME: 2,
  BATCH: 3,
  ACK: 4,
  PING: 5,
  REFUSE: 6,
  FETCH: 7,
  FILE: 8,
} as const;

export interface Hello {
  v: number;
  agent: string;
  spool: string;
  next: number;
}
export interface Welcome {
  v: number;
  acked: number;
  credits: number;
  heartbeat: number;
}
export interface BatchMsg {
  first: number;
  count: number;
  data: Buffer;
}
export interface AckMsg {
  acked: number;
  credits: number;
}

export const encodeJson = (type: number, v: unknown) => encodeFrame(type, Buffer.from(JSON.stringify(v)));

export function decodeJson<T>(f: Frame, what: string): T {
  try {
    return JSON.parse(f.payload.toString('utf8')) as T;
  } catch {
    throw new SkafeError('SKAFE_PROTOCOL', `${what} frame is not valid JSON`);
  }
}

export function decodeHello(f: Frame): Hello {
  const h = decodeJson<Hello>(f, 'HELLO');
  if (h?.v !== PROTOCOL_VERSION) throw new SkafeError('SKAFE_PROTOCOL', `unsupported protocol version ${JSON.stringify(h?.v)} (this server speaks ${PROTOCOL_VERSION})`);
  if (typeof h.agent !== 'string' || typeof h.spool !== 'string' || !/^[0-9a-f]{8,64}$/.test(h.spool) || !Number.isSafeInteger(h.next)) {
    throw new SkafeError('SKAFE_PROTOCOL', 'HELLO lacks agent, spool identity or next offset');
  }
  return h;
}

// Offsets fit in 48 bits (2^48 events is centuries at a million a second).
export function encodeBatch(b: BatchMsg): Buffer {
  const head = Buffer.allocUnsafe(10);
  head.writeUIntBE(b.first, 0, 6);
  head.writeUInt32BE(b.count, 6);
  return encodeFrame(MsgType.BATCH, Buffer.concat([head, b.data]));
}

export function decodeBatch(f: Frame): BatchMsg {
  if (f.payload.length < 10) throw new SkafeError('SKAFE_PROTOCOL', 'short BATCH frame');
  return { first: f.payload.readUIntBE(0, 6), count: f.payload.readUInt32BE(6), data: f.payload.subarray(10) };
}

export function encodeAck(a: AckMsg): Buffer {
  const p = Buffer.allocUnsafe(10);
  // Sent as acked+1 so "nothing yet" (-1) fits an unsigned field.
  p.writeUIntBE(a.acked + 1, 0, 6);
  p.writeUInt32BE(a.credits, 6);
  return encodeFrame(MsgType.ACK, p);
}

export function decodeAck(f: Frame): AckMsg {
  if (f.payload.length !== 10) throw new SkafeError('SKAFE_PROTOCOL', 'bad ACK frame');
  return { acked: f.payload.readUIntBE(0, 6) - 1, credits: f.payload.readUInt32BE(6) };
}

export const PING = encodeFrame(MsgType.PING);

export interface FetchMsg {
  rid: number;
  path: string;
}

export function decodeFetch(f: Frame): FetchMsg {
  const m = decodeJson<FetchMsg>(f, 'FETCH');
  if (!Number.isSafeInteger(m?.rid) || typeof m.path !== 'string') throw new SkafeError('SKAFE_PROTOCOL', 'FETCH lacks rid or path');
  return m;
}

export type FileMsg = { rid: number; ok: true; data: Buffer } | { rid: number; ok: false; error: string };

export function encodeFile(m: FileMsg): Buffer {
  const body = m.ok ? m.data : Buffer.from(m.error);
  const p = Buffer.allocUnsafe(5 + body.length);
  p.writeUInt32BE(m.rid, 0);
  p.writeUInt8(m.ok ? 1 : 0, 4);
  body.copy(p, 5);
  return encodeFrame(MsgType.FILE, p);
}

export function decodeFile(f: Frame): FileMsg {
  if (f.payload.length < 5) throw new SkafeError('SKAFE_PROTOCOL', 'short FILE frame');
  const rid = f.payload.readUInt32BE(0);
  const body = f.payload.subarray(5);
  return f.payload[4] === 1 ? { rid, ok: true, data: body } : { rid, ok: false, error: body.toString('utf8') };
}
