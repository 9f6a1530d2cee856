import { SkafeError } from '../errors.js';

// Every link message is one frame: u32 big-endian length of what follows,
// a u8 message type, then the payload. The length is checked against a hard cap
// before anything is buffered, so a peer cannot make us allocate unbounded memory.

export const DEFAULT_MAX_FRAME = 16 * 1024 * 1024;
const HEADER = 5;

export interface Frame {
  type: number;
  payload: Buffer;
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32BE(payload.length + 1, 0);
  out.writeUInt8(type, 4);
  payload.copy(out, HEADER);
  return out;
}

/** Splits a byte stream into frames; throws SKAFE_PROTOCOL on an oversized or empty frame. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private maxFrame = DEFAULT_MAX_FRAME) {}

  /** Bytes read and not yet handed out as a frame: a frame not yet complete. */
  get held(): number {
    return this.buffered;
  }

  /** The cap for frames from now on (a link may allow larger frames once its peer is known). */
  setMaxFrame(n: number): void {
    this.maxFrame = n;
  }

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const len = head.readUInt32BE(0);
      if (len === 0) throw new SkafeError('SKAFE_PROTOCOL', 'empty frame (length 0)');
      if (len > this.maxFrame) throw new SkafeError('SKAFE_PROTOCOL', `frame of ${len} bytes exceeds the ${this.maxFrame}-byte cap`);
      if (this.buffered < 4 + len) break;
      const whole = this.take(4 + len);
      frames.push({ type: whole[4]!, payload: whole.subarray(HEADER) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    let first = this.chunks[0]!;
    if (first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
