import { recordTypeName, recordTypeNumber } from './record-types.js';

/**
 * One kernel (or auditd) audit record, as every source emits it: the text
 * sources from `audit.log` lines and the audisp wire, the netlink source from
 * the kernel's messages. Fields stay unparsed text until something needs them
 * (coalescing only needs the header).
 */
export interface AuditRecord {
  /** Record type name: `SYSCALL`, or `UNKNOWN[1334]` for a number we have no name for. */
  type: string;
  /** Record type number, 0 when the text form gave only a name we do not know. */
  typeNum: number;
  /** `node=` prefix, when the writer added one. */
  node?: string;
  sec: number;
  msec: number;
  serial: number;
  /** `sec.ms:serial` exactly as in the header (milliseconds keep their zero padding). */
  id: string;
  /** The raw field text after `): `, before any `\x1d`. */
  body: string;
  /** auditd's ENRICHED part (after `\x1d`): `UID="root" AUID="unset" …`. */
  enriched?: string;
}

export type ParseResult = AuditRecord | { error: string };

const GS = '\x1d';

/**
 * Parse the text forms of one record line:
 *   [node=HOST ]type=NAME msg=audit(SEC.MS:SERIAL): FIELDS[\x1dENRICHED]
 *   audit(SEC.MS:SERIAL): FIELDS            (bare netlink payload; type unknown)
 * `typeNumHint` supplies the type when the caller knows it (netlink header).
 */
export function parseRecordLine(line: string, typeNumHint = 0): ParseResult {
  let pos = 0;
  let node: string | undefined;
  let type: string | undefined;
  let typeNum = typeNumHint;

  if (line.charCodeAt(line.length - 1) === 13 /* \r */) line = line.slice(0, -1);

  if (line.startsWith('node=')) {
    const sp = line.indexOf(' ', 5);
    if (sp < 0) return { error: 'node= prefix without a record after it' };
    node = line.slice(5, sp);
    pos = sp + 1;
  }
  let auditAt: number;
  if (line.startsWith('type=', pos)) {
    const sp = line.indexOf(' ', pos + 5);
    if (sp < 0) return { error: 'type= without a msg=audit(...) header' };
    type = line.slice(pos + 5, sp);
    pos = sp + 1;
    if (!line.startsWith('msg=audit(', pos)) return { error: 'missing msg=audit(...) header after type=' };
    auditAt = pos + 10;
  } else if (line.startsWith('audit(', pos)) {
    auditAt = pos + 6;
  } else if (line.startsWith('msg=audit(', pos)) {
    auditAt = pos + 10;
  } else {
    return { error: 'line does not start with type=, node= or audit(' };
  }

  // SEC.MS:SERIAL)
  const close = line.indexOf(')', auditAt);
  if (close < 0 || close - auditAt > 40) return { error: 'unterminated msg=audit( header' };
  const dot = line.indexOf('.', auditAt);
  const colon = line.indexOf(':', auditAt);
  if (dot < 0 || colon < 0 || !(dot < colon && colon < close)) return { error: 'malformed msg=audit(sec.ms:serial) header' };
  const sec = digits(line, auditAt, dot);
  const msec = digits(line, dot + 1, colon);
  const serial = digits(line, colon + 1, close);
  if (sec < 0 || msec < 0 || serial < 0) return { error: 'non-numeric value in msg=audit(sec.ms:serial) header' };
  const id = line.slice(auditAt, close);

  let bodyStart = close + 1;
  if (line.charCodeAt(bodyStart) === 58 /* : */) bodyStart++;
  if (line.charCodeAt(bodyStart) === 32 /* space */) bodyStart++;
  let body: string;
  let enriched: string | undefined;
  const gs = line.indexOf(GS, bodyStart);
  if (gs >= 0) {
    body = line.slice(bodyStart, gs);
    enriched = line.slice(gs + 1);
  } else {
    body = line.slice(bodyStart);
  }

  if (type === undefined) {
    type = typeNum ? recordTypeName(typeNum) : 'UNKNOWN';
  } else if (typeNum === 0) {
    const n = recordTypeNumber(type);
    if (n !== undefined) typeNum = n;
    else if (/^\d+$/.test(type)) {
      typeNum = Number(type);
      type = recordTypeName(typeNum);
    } else if (type.startsWith('UNKNOWN[')) {
      const m = /^UNKNOWN\[(\d+)\]$/.exec(type);
      if (m) typeNum = Number(m[1]);
    } else if (!/^[A-Z0-9_]+$/.test(type)) {
      return { error: `invalid record type "${type.slice(0, 40)}"` };
    }
  }

  const rec: AuditRecord = { type, typeNum, sec, msec, serial, id, body };
  if (node !== undefined) rec.node = node;
  if (enriched !== undefined) rec.enriched = enriched;
  return rec;
}

/** Non-negative decimal integer in line[from, to), or -1. */
function digits(s: string, from: number, to: number): number {
  if (to <= from || to - from > 20) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

/** Record types that close an event without other records of the same id following. */
export const AUDIT_EOE = 1320;
