// Output buffers passed around again instead of made afresh. Every batch of
// JSON lines a worker thread writes is ~1 MB (coalesce) to ~2 MB (rules, seven
// lines an event); a fresh ArrayBuffer each time meant page faults in the
// worker that filled it and an unmap on the thread that dropped it: 13–17% of
// the rule stage's CPU went to the kernel. Sinks that write ENCODED_BYTES
// batches hand the buffer back once written (recycleBatch, src/stage.ts), the
// stages that run workers send one along with each request, and the worker
// writes into it when it fits (encodeLines).
//
// Main-thread side: one pool per thread, bounded; nothing relies on a buffer
// coming back (a batch dropped anywhere is simply collected).

const MAX_POOLED = 16;
// Buffers worth keeping: small ones are cheap, huge ones would hold memory.
const MIN_SIZE = 64 * 1024;
const MAX_SIZE = 16 * 1024 * 1024;

const free: ArrayBuffer[] = [];

/**
 * A spare buffer of at least `min` bytes to send with a request to a worker,
 * if one is free: the smallest that fits, so small requests leave the large
 * buffers to the large ones (a worker handed one too small allocates anew).
 */
export function takeBuffer(min = 0): ArrayBuffer | undefined {
  let best = -1;
  for (let i = 0; i < free.length; i++) {
    const n = free[i]!.byteLength;
    if (n >= min && (best < 0 || n < free[best]!.byteLength)) best = i;
  }
  if (best < 0) return undefined;
  // kept in the order given (see giveBuffer)
  return free.splice(best, 1)[0];
}

/** A buffer nothing reads any more. */
export function giveBuffer(b: ArrayBuffer): void {
  // a transferred (detached) buffer has length 0
  if (b.byteLength < MIN_SIZE || b.byteLength > MAX_SIZE) return;
  // Full: the buffer given longest ago makes room. The sizes asked for change (a replay's
  // coalesce hands on ~300 KB batches, a rule worker's output for large events is many MB);
  // dropping the new buffer instead left a pool of stale small ones that no large request
  // could use, each of which then allocated afresh: the rules bench fed 512-event batches
  // ran 4× slower, mostly zeroing new memory and collecting it.
  if (free.length >= MAX_POOLED) free.shift();
  free.push(b);
}

/** How many buffers are free (tests). */
export function pooledBuffers(): number {
  return free.length;
}

/**
 * How big the output of a request will be, from recent ones: output bytes per
 * unit of input (events, input bytes) as a decaying maximum. The stages that
 * send work to threads size their spare buffers with it, so a worker writes
 * into one buffer of the right size instead of growing and copying.
 */
export class OutputSize {
  private perUnit = 0;

  observe(bytes: number, units: number): void {
    if (units > 0) this.perUnit = Math.max(bytes / units, this.perUnit * 0.98);
  }

  /** Expected bytes for `units`, with a little room (0 until something was observed). */
  expect(units: number): number {
    return Math.ceil(units * this.perUnit * 1.05);
  }
}

// Worker side.

/** Room for `n` bytes and then some, in 64 KB steps: a reused buffer then fits the batches after it. */
export function roomFor(n: number): ArrayBuffer {
  return new ArrayBuffer(Math.ceil((n + (n >> 3) + 1) / 65536) * 65536);
}

/**
 * `lines` as JSON-lines bytes (each line and a newline), in `spare` when they
 * fit, else in a new buffer with room (so it can be reused). `spare` may also
 * be asked for with the size the lines need (`takeBuffer`: from this
 * thread's pool). Written line by line: joining first would make one string
 * of the whole batch, a large object only a full collection frees. The result
 * is a view from offset 0.
 */
export function encodeLines(lines: readonly string[], spare: ArrayBuffer | undefined | ((min: number) => ArrayBuffer | undefined)): Uint8Array {
  let chars = 0;
  for (let i = 0; i < lines.length; i++) chars += lines[i]!.length + 1;
  const room = typeof spare === 'function' ? spare(chars) : spare;
  let buf = Buffer.from(room !== undefined && room.byteLength >= chars ? room : roomFor(chars));
  let size = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    // UTF-8 takes at most 3 bytes per UTF-16 unit: grow only when even that might not fit
    if (size + 3 * line.length + 1 > buf.length && size + Buffer.byteLength(line) + 1 > buf.length) {
      const grown = Buffer.from(roomFor(Math.max(2 * buf.length, size + 3 * line.length + 1)));
      buf.copy(grown, 0, 0, size);
      buf = grown;
    }
    size += buf.write(line, size);
    buf[size++] = 10;
  }
  return new Uint8Array(buf.buffer, 0, size);
}
