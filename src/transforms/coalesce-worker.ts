// Worker thread for `coalesce` with `workers > 0`: interprets complete events
// and serializes them to JSON text, so the main thread only reads, groups and
// writes. Events arrive flattened (see packEvents) because structured clone
// copies flat arrays of strings and numbers far faster than records as objects.
import { parentPort } from 'node:worker_threads';
import { interpret } from '../audit/interpret.js';
import { unpackEvents } from './event-packing.js';
export { packEvents, unpackEvents } from './event-packing.js';

export interface WorkerRequest {
  seq: number;
  flat: Array<string | number>;
  /** Reply with the JSON-lines bytes of the whole batch instead of one string per event. */
  bytes: boolean;
}
export interface WorkerReply {
  seq: number;
  count: number;
  lines?: string[];
  bytes?: Uint8Array;
  problems: Array<[id: string, message: string]>;
}

const encoder = new TextEncoder();

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
      const bytes = encoder.encode(lines.join('\n') + '\n');
      port.postMessage({ seq: m.seq, count: lines.length, bytes, problems } satisfies WorkerReply, [bytes.buffer as ArrayBuffer]);
    } else {
      port.postMessage({ seq: m.seq, count: lines.length, lines, problems } satisfies WorkerReply);
    }
  });
}
