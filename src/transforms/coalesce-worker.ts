// Worker thread for `coalesce` with `workers > 0`: interprets complete events
// and serializes them to JSON text, so the main thread only reads, groups and
// writes. Events arrive flattened (see packEvents) because structured clone
// copies flat arrays of strings and numbers far faster than records as objects.
import { parentPort } from 'node:worker_threads';
import { interpret } from '../audit/interpret.js';
import { unpackEvents } from './event-packing.js';
import { encodeLines } from '../buffer-pool.js';
export { packEvents, unpackEvents } from './event-packing.js';

export interface WorkerRequest {
  seq: number;
  flat: Array<string | number>;
  /** Reply with the JSON-lines bytes of the whole batch instead of one string per event. */
  bytes: boolean;
  /** With bytes: a buffer to write them into (src/buffer-pool.ts). */
  spare?: ArrayBuffer;
}
export interface WorkerReply {
  seq: number;
  count: number;
  lines?: string[];
  bytes?: Uint8Array;
  /** The request's spare buffer, when the bytes did not fit in it. */
  spare?: ArrayBuffer;
  problems: Array<[id: string, message: string]>;
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (m: WorkerRequest) => {
    const events = unpackEvents(m.flat);
    const lines: string[] = new Array(events.length);
    const problems: WorkerReply['problems'] = [];
    for (let i = 0; i < events.length; i++) {
      const recs = events[i]!;
      lines[i] = JSON.stringify(interpret(recs, (msg) => problems.length < 64 && problems.push([recs[0]!.id, msg])));
    }
    if (m.bytes) {
      // Encoding here and transferring the buffer keeps the main thread to reading and writing.
      const bytes = encodeLines(lines, m.spare);
      const reply: WorkerReply = { seq: m.seq, count: lines.length, bytes, problems };
      const transfer = [bytes.buffer as ArrayBuffer];
      if (m.spare !== undefined && m.spare !== bytes.buffer) transfer.push((reply.spare = m.spare));
      port.postMessage(reply, transfer);
    } else {
      port.postMessage({ seq: m.seq, count: lines.length, lines, problems } satisfies WorkerReply);
    }
  });
}
