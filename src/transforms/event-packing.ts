// Events (arrays of records) flattened for postMessage: structured clone copies
// a flat array of strings and numbers far faster than records as objects.
// Shared by the coalesce and replay worker threads; no side effects on import.
import type { AuditRecord } from '../audit/record.js';

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

/** The records of the one event whose record count is at flat[at]. */
export function unpackEventAt(flat: Array<string | number>, at: number): AuditRecord[] {
  return unpackEvents(flat.slice(at, at + 1 + FIELDS_PER_RECORD * (flat[at] as number)))[0]!;
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

