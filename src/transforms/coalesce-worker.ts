// Worker thread for `coalesce` with `workers > 0`: interprets complete events
// and serializes them to JSON text, so the main thread only reads, groups and
// writes. Events arrive as their records' lines (raw records, one buffer) or
// flattened (see packEvents: structured clone copies flat arrays of strings
// and numbers far faster than records as objects). With the native addon the
// JSON is written natively (src/audit/native-interpret.ts).
import { parentPort } from 'node:worker_threads';
import { interpret } from '../audit/interpret.js';
import { unpackEvents, unpackEventAt } from './event-packing.js';
import { interpretPacked, interpretRaw } from '../audit/native-interpret.js';
import { parseRecordLine, type AuditRecord } from '../audit/record.js';
import { encodeLines } from '../buffer-pool.js';
export { packEvents, unpackEvents } from './event-packing.js';

/** The records of the event whose record count is at index[at], parsed from their lines. */
function rawEventAt(bytes: Buffer, index: Int32Array, at: number): AuditRecord[] {
  const n = index[at]!;
  const recs: AuditRecord[] = [];
  for (let k = 0; k < n; k++) {
    // every line here was one the native scanner read as a record: it parses
    recs.push(parseRecordLine(bytes.toString('utf8', index[at + 1 + 2 * k], index[at + 2 + 2 * k])) as AuditRecord);
  }
  return recs;
}

export interface WorkerRequest {
  seq: number;
  flat: Array<string | number>;
  /** Reply with the JSON-lines bytes of the whole batch instead of one string per event. */
  bytes: boolean;
  /** With bytes: a buffer to write them into (src/buffer-pool.ts). */
  spare?: ArrayBuffer;
  /** Instead of `flat`: the events as record lines (RawRecords), see rawLines in coalesce.ts. */
  raw?: { bytes: ArrayBuffer; index: Int32Array; events: number };
}
export interface WorkerReply {
  seq: number;
  count: number;
  lines?: string[];
  bytes?: Uint8Array;
  /** The request's spare buffer, when the bytes did not fit in it. */
  spare?: ArrayBuffer;
  /** The request's raw lines buffer, read and done with. */
  free?: ArrayBuffer;
  problems: Array<[id: string, message: string]>;
}

if (parentPort) {
  const port = parentPort;
  port.on('message', (m: WorkerRequest) => {
    if (m.bytes) {
      // Natively, where the addon is built; the events it leaves alone through interpret() below.
      const problems: WorkerReply['problems'] = [];
      const slowly = (recs: AuditRecord[]) => JSON.stringify(interpret(recs, (msg) => problems.length < 64 && problems.push([recs[0]!.id, msg])));
      let r: ReturnType<typeof interpretPacked>;
      if (m.raw !== undefined) {
        const bytes = Buffer.from(m.raw.bytes);
        const index = m.raw.index;
        r = interpretRaw(bytes, index, m.raw.events, m.spare, (at) => slowly(rawEventAt(bytes, index, at)));
        // the main thread scanned these lines with the addon: it is here too
        if (r === undefined) throw new Error('raw record lines without the native interpreter');
      } else {
        r = interpretPacked(m.flat, m.spare, (at) => slowly(unpackEventAt(m.flat, at)));
      }
      if (r !== undefined) {
        const reply: WorkerReply = { seq: m.seq, count: r.count, bytes: r.bytes, problems };
        const transfer = [r.bytes.buffer as ArrayBuffer];
        if (m.spare !== undefined && m.spare !== r.bytes.buffer) transfer.push((reply.spare = m.spare));
        if (m.raw !== undefined && m.raw.bytes !== r.bytes.buffer) transfer.push((reply.free = m.raw.bytes));
        port.postMessage(reply, transfer);
        return;
      }
    }
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
