// The event lines an agent sent, as the server queue hands them on. The queue
// does not parse them (it splices agent.name into the text) and the rule
// workers' walker skips what it does not read, so a line from outside is
// checked here once, against JSON's grammar, by the native addon
// (native/interpret/src/check-lines.cc; ~1.7 µs for a 2 KB event, a sixth of
// JSON.parse) or, without it, by JSON.parse.
//
// A line that is not a JSON object is not dropped: it goes on as an event
// holding its text in ECS event.original, with error.code and error.message,
// so the logs keep what the agent sent and a rule can watch for it.
import { arrayLines, expandBatch } from './codec.js';
import { interpretAddon } from '../native-addon.js';

/** A JSON object whose `{` can become `{"agent":…,`. */
export const SPLICE = 0;
/** A JSON object that must be parsed to take the agent (it has its own, or is laid out otherwise). */
export const MERGE = 1;
/** Not a JSON object, or nested deeper than MAX_DEPTH. */
export const BAD = 2;

/**
 * Objects and arrays nested deeper than this (the event itself is level 1)
 * are not an event: JSON.parse reads any depth, but JSON.stringify recurses
 * and throws past a few thousand levels in whichever stage writes the event
 * out. Audit events go 5 deep. As in check-lines.cc.
 */
export const MAX_DEPTH = 100;

interface Addon {
  checkJsonLines(bytes: Uint8Array, length: number, statuses: Uint8Array): number;
}

export interface CheckedLines {
  lines: string[];
  /** Per line: SPLICE, MERGE or BAD. */
  status: Uint8Array;
}

/** A packed batch's lines, each with its status (throws as expandBatch: past `maxExpanded` bytes or `maxEvents` events). */
export async function unpackCheckedLines(data: Buffer, maxExpanded?: number, maxEvents?: number): Promise<CheckedLines> {
  const raw = await expandBatch(data, maxExpanded, maxEvents);
  const text = raw.toString('utf8');
  if (text === '') return { lines: [], status: new Uint8Array(0) };
  const array = arrayLines(text);
  const lines = array ?? text.split('\n');
  const status = new Uint8Array(lines.length);
  const addon = array ? null : interpretAddon<Addon>();
  if (!addon || addon.checkJsonLines(raw, raw.length, status) !== lines.length) checkLinesInJs(lines, status);
  return { lines, status };
}

/** The same statuses by JSON.parse, where the addon is not built (test/link/event-lines.test.ts holds the two together). */
export function checkLinesInJs(lines: string[], status: Uint8Array): void {
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    let v: unknown;
    try {
      v = JSON.parse(l);
    } catch {
      status[i] = BAD;
      continue;
    }
    if (!isObject(v) || tooDeep(v)) status[i] = BAD;
    else status[i] = l[0] === '{' && l[1] === '"' && l[l.length - 1] === '}' && !Object.hasOwn(v, 'agent') ? SPLICE : MERGE;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Nested deeper than MAX_DEPTH; walked without recursion, for the same reason as the limit. */
function tooDeep(v: object): boolean {
  const open: Array<[object, number]> = [[v, 1]];
  for (let top; (top = open.pop()); ) {
    const [o, depth] = top;
    if (depth > MAX_DEPTH) return true;
    for (const c of Object.values(o)) if (typeof c === 'object' && c !== null) open.push([c as object, depth + 1]);
  }
  return false;
}

/** Why a parsed value is not taken as an event. */
function whyNot(v: unknown): string {
  if (!isObject(v)) return `JSON, but ${Array.isArray(v) ? 'an array' : v === null ? 'null' : `a ${typeof v}`}, not an object`;
  return tooDeep(v) ? `a JSON object nested deeper than ${MAX_DEPTH} levels` : 'a JSON object';
}

/** Why a line is not taken as an event, in JSON.parse's words where it has them. */
export function whyNotObject(line: string): string {
  try {
    return whyNot(JSON.parse(line));
  } catch (e) {
    return (e as Error).message;
  }
}

/** The event that stands for a line that is not a JSON object. */
export function malformedEvent(line: string, why: string, agent?: Record<string, unknown>): Record<string, unknown> {
  return { ...(agent ? { agent } : {}), event: { original: line }, error: { code: 'SKAFE_MALFORMED_EVENT', message: why } };
}

/**
 * A line parsed, or, when it is not a JSON object, the malformed event
 * standing for it (reported through `report` with why). For stages that parse
 * lines they did not check; their depth is not walked again here: text from
 * agents was checked by the queue, and ours is JSON.stringify's.
 */
export function parseEventLine(line: string, report: (why: string) => void): { event: Record<string, unknown>; malformed: boolean } {
  let why: string;
  try {
    const v = JSON.parse(line) as unknown;
    if (isObject(v)) return { event: v, malformed: false };
    why = whyNot(v);
  } catch (e) {
    why = (e as Error).message;
  }
  report(why);
  return { event: malformedEvent(line, why), malformed: true };
}

/** A line of JSON white space only carries nothing: it is counted, not kept. */
export function isBlank(line: string): boolean {
  return /^[ \t\r]*$/.test(line);
}
