// Worker thread for `coalesce` with `workers > 0`: interprets complete events
// and serializes them to JSON text, so the main thread only reads, groups and
// writes. Events arrive flattened (see packEvents) because structured clone
// copies flat arrays of strings and numbers far faster than records as objects.
import { parentPort } from 'node:worker_threads';
import { interpret } from '../audit/interpret.js';
import type { AuditRecord } from '../audit/record.js';

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

export const FIELDS_PER_RECORD = 9;

/** Records of several events → one flat array: [nRecords, type, typeNum, node, sec, msec, serial, id, body, enriched, …]. */
export function packEvents(events: AuditRecord[][]): Array<string | number> {
  const flat: Array<string | number> = [];
  for (const recs of events) {
    flat.push(recs.length);
    for (const r of recs) flat.push(r.type, r.typeNum, r.node ?? '\0', r.sec, r.msec, r.serial, r.id, r.body, r.enriched ?? '\0');
  }
  return flat;
}

export function unpackEvents(flat: Array<string | number>): AuditRecord[][] {
  const out: AuditRecord[][] = [];
  let i = 0;
  while (i < flat.length) {
    const n = flat[i++] as number;
    const recs: AuditRecord[] = new Array(n);
    for (let k = 0; k < n; k++, i += FIELDS_PER_RECORD) {
      const r: AuditRecord = {
        type: flat[i] as string,
        typeNum: flat[i + 1] as number,
        sec: flat[i + 3] as number,
        msec: flat[i + 4] as number,
        serial: flat[i + 5] as number,
        id: flat[i + 6] as string,
        body: flat[i + 7] as string,
      };
      if (flat[i + 2] !== '\0') r.node = flat[i + 2] as string;
      if (flat[i + 8] !== '\0') r.enriched = flat[i + 8] as string;
      recs[k] = r;
    }
    out.push(recs);
  }
  return out;
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
