// The native interpreter (native/interpret): the records of a batch of events,
// packed as packEvents packs them, in; their JSON lines out, the bytes
// JSON.stringify(interpret(records)) would give, written straight into a
// buffer. Events it leaves alone (anything unusual, see the .cc file's head)
// come back marked and are written by the JavaScript path, so problems are
// reported in one place. SKAFE_NATIVE_INTERPRET=0 switches it off; without
// the addon (not built) everything runs in JavaScript.
import { archTable } from './arch.js';
import { nameTables } from './users.js';
import { recordTypeTable } from './record-types.js';
import { roomFor } from '../buffer-pool.js';
import { interpretAddon } from '../native-addon.js';

interface Addon {
  setArches(list: Array<[string, string, ReadonlyArray<string | undefined>]>): void;
  setNames(group: boolean, ids: number[], names: string[]): void;
  interpretBatch(flat: Array<string | number>, state: Int32Array, out: Uint8Array, marks: Int32Array): number;
  setRecordTypes(names: string[], numbers: number[]): void;
  scanLines(data: Uint8Array, from: number, out: Float64Array): number;
  interpretRaw(bytes: Uint8Array, index: Int32Array, state: Int32Array, out: Uint8Array, marks: Int32Array): number;
}

let ready = false;

function loadAddon(): Addon | null {
  const addon = interpretAddon<Addon>();
  if (addon && !ready) {
    ready = true;
    addon.setArches(archTable());
    const types = recordTypeTable();
    addon.setRecordTypes(types.map((t) => t[1]), types.map((t) => t[0]));
  }
  return addon;
}

/** Whether events are interpreted natively in this thread (the addon is built and not switched off). */
export function nativeInterpreterAvailable(): boolean {
  return loadAddon() !== null;
}

let users: ReadonlyMap<number, string> | undefined;
let groups: ReadonlyMap<number, string> | undefined;

function syncNames(a: Addon): void {
  const t = nameTables();
  if (t.users !== users) {
    users = t.users;
    a.setNames(false, [...users.keys()], [...users.values()]);
  }
  if (t.groups !== groups) {
    groups = t.groups;
    a.setNames(true, [...groups.keys()], [...groups.values()]);
  }
}

/** Slots per line in scanLines' output, see native/interpret. */
export const SCAN_SLOTS = 11;
/** scanLines statuses. */
export const LINE_RECORD = 0;
export const LINE_EMPTY = 1;
export const LINE_FOR_JS = 2;

/**
 * The complete lines of data[from…] as native/interpret's scanLines reads
 * them (SCAN_SLOTS numbers a line in `out`), or -1 without the addon.
 */
export function scanLines(data: Uint8Array, from: number, out: Float64Array): number {
  const a = loadAddon();
  return a === null ? -1 : a.scanLines(data, from, out);
}

/**
 * interpretPacked for events given as raw record lines: `index` holds, per
 * event, its record count and each line's start and end in `bytes`.
 * `slow(at)` writes the event whose record count is at index[at].
 */
export function interpretRaw(bytes: Uint8Array, index: Int32Array, events: number, spare: ArrayBuffer | undefined, slow: (at: number) => string): { bytes: Uint8Array; count: number } | undefined {
  const a = loadAddon();
  if (a === null) return undefined;
  syncNames(a);
  return run(events, spare, slow, (state, out, marks) => a.interpretRaw(bytes, index, state, out, marks));
}

/**
 * JSON-lines bytes of the packed events, in `spare` when they fit (a view from
 * offset 0), or undefined when the native interpreter is not available.
 * `slow(at)` writes the line of the event whose record count is at flat[at],
 * for the events the native code leaves to JavaScript.
 */
export function interpretPacked(flat: Array<string | number>, spare: ArrayBuffer | undefined, slow: (at: number) => string): { bytes: Uint8Array; count: number } | undefined {
  const a = loadAddon();
  if (a === null) return undefined;
  syncNames(a);
  let events = 0;
  for (let i = 0; i < flat.length; i += 1 + 9 * (flat[i] as number)) events++;
  return run(events, spare, slow, (state, out, marks) => a.interpretBatch(flat, state, out, marks));
}

function run(events: number, spare: ArrayBuffer | undefined, slow: (at: number) => string, step: (state: Int32Array, out: Uint8Array, marks: Int32Array) => number): { bytes: Uint8Array; count: number } {
  const marks = new Int32Array(2 * events);
  const state = new Int32Array(3);
  let out = new Uint8Array(spare !== undefined && spare.byteLength > 0 ? spare : roomFor(256 * 1024));
  while (step(state, out, marks) === 1) {
    // ran full: a buffer twice the size, what is written so far copied over
    const grown = new Uint8Array(roomFor(2 * out.length));
    grown.set(out.subarray(0, state[1]));
    out = grown;
  }
  let slowOnes = 0;
  for (let e = 0; e < events; e++) if (marks[2 * e + 1] === -1) slowOnes++;
  if (slowOnes === 0) return { bytes: out.subarray(0, state[1]), count: events };
  // Some events in JavaScript: their lines go between the native ones, in order.
  const pieces: Uint8Array[] = [];
  let from = 0;
  for (let e = 0; e < events; e++) {
    const end = marks[2 * e + 1]!;
    if (end >= 0) {
      pieces.push(out.subarray(from, end));
      from = end;
    } else {
      pieces.push(Buffer.from(slow(marks[2 * e]!) + '\n'));
    }
  }
  let size = 0;
  for (const p of pieces) size += p.length;
  const joined = new Uint8Array(roomFor(size));
  let at = 0;
  for (const p of pieces) {
    joined.set(p, at);
    at += p.length;
  }
  return { bytes: joined.subarray(0, size), count: events };
}
