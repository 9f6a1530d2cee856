// The rule tree's projection (projection.ts) done by the native addon
// (native/interpret/src/project.cc) over a batch's JSON-lines bytes: the addon
// walks the bytes and writes operations; here they are replayed into the very
// objects projectJson builds (null-prototype objects, arrays, values as
// JSON.parse reads them). Lines the addon leaves alone, and any value that
// does not parse, go through projectJson on the decoded text as before.
import { projectJson, type Projection } from './projection.js';
import { interpretAddon } from '../native-addon.js';

interface Addon {
  setProjection(id: number, nodes: Array<[boolean, boolean, string[], number[], number[]]> | null): void;
  projectLines(id: number, bytes: Uint8Array, length: number): Int32Array;
  setTails(id: number, bytes: Uint8Array, offsets: Int32Array, logs: Uint8Array): void;
  spliceLines(id: number, input: Uint8Array, lines: Int32Array, plan: Int32Array, planLength: number, out: Uint8Array, at: number): number;
}

/** Ints per line in projectLines' result: start, end, first op, op count, kind start, kind end, how. */
const LINE_INTS = 7;

const OP_OBJECT = 1;
const OP_ARRAY = 2;
const OP_END = 3;
const OP_VALUE = 4;
const PLAIN_STRING = 1;
const ASCII = 2;

let nextId = 1;

// Buffer's own decoders, without toString's argument checks (they exist on every Buffer).
type SliceBuffer = Buffer & { utf8Slice(start: number, end: number): string; latin1Slice(start: number, end: number): string };

/**
 * A batch's lines as the addon read them: each line's projection (undefined:
 * the tree reads it from the text), its text decoded only when asked for, and
 * where event.kind goes in (output.ts kindSplice), so its output lines can be
 * copied from the bytes without decoding them (spliceLines).
 */
export class ProjectedBatch {
  readonly projected: Array<Record<string, unknown> | undefined>;
  /** How many lines the addon projected (the others went through projectJson). */
  native = 0;
  private readonly texts: Array<string | undefined>;

  constructor(
    private readonly projector: NativeProjector,
    /** The input bytes. */
    readonly buf: SliceBuffer,
    /** projectLines' result. */
    readonly lines: Int32Array,
  ) {
    const n = lines[0]!;
    this.projected = new Array(n);
    this.texts = new Array(n);
  }

  get length(): number {
    return this.lines[0]!;
  }

  /** Line i, decoded (as splitJsonLines decodes it). */
  text(i: number): string {
    return (this.texts[i] ??= this.buf.utf8Slice(this.lines[1 + LINE_INTS * i]!, this.lines[2 + LINE_INTS * i]!));
  }

  /** -1 when line i cannot be spliced, else the kind mode (KIND_REPLACE, KIND_APPEND, KIND_ONLY of output.ts). */
  spliceHow(i: number): number {
    return this.lines[7 + LINE_INTS * i]!;
  }

  /** Bytes of line i before event.kind's place, and from after it to the closing brace. */
  spliceLengths(i: number): [head: number, mid: number] {
    const at = 1 + LINE_INTS * i;
    const l = this.lines;
    return [l[at + 4]!, l[at + 1]! - l[at]! - 1 - l[at + 5]!];
  }

  /** Writes the lines `plan` asks for into out from `at` (see spliceLines); the offset after them. */
  splice(plan: Int32Array, planLength: number, out: Uint8Array, at: number): number {
    return this.projector.spliceLines(this, plan, planLength, out, at);
  }
}

export class NativeProjector {
  private readonly id = nextId++;
  private readonly keys: string[] = [];

  private constructor(
    private readonly a: Addon,
    private readonly projection: Projection,
  ) {
    // Nodes numbered breadth-first from the root (0); every child key gets an id into `keys`.
    const nodes: Projection[] = [projection];
    const spec: Array<[boolean, boolean, string[], number[], number[]]> = [];
    for (let i = 0; i < nodes.length; i++) {
      const p = nodes[i]!;
      const keys: string[] = [];
      const keyIds: number[] = [];
      const children: number[] = [];
      for (const [k, c] of p.children) {
        keys.push(k);
        keyIds.push(this.keys.length);
        this.keys.push(k);
        children.push(nodes.length);
        nodes.push(c);
      }
      spec.push([p.full, p.indexed, keys, keyIds, children]);
    }
    a.setProjection(this.id, spec);
  }

  static create(projection: Projection): NativeProjector | undefined {
    const a = interpretAddon<Addon>();
    return a === null ? undefined : new NativeProjector(a, projection);
  }

  /** The output lines' ends, for splice: node i's ruleTailBytes, and the logs its trigger writes to. */
  setTails(nodes: ReadonlyArray<{ ruleTailBytes: Uint8Array; trigger: string | null }>): void {
    const offsets = new Int32Array(nodes.length + 1);
    for (let i = 0; i < nodes.length; i++) offsets[i + 1] = offsets[i]! + nodes[i]!.ruleTailBytes.length;
    const bytes = new Uint8Array(offsets[nodes.length]!);
    const logs = new Uint8Array(nodes.length);
    nodes.forEach((n, i) => {
      bytes.set(n.ruleTailBytes, offsets[i]!);
      logs[i] = (n.trigger === 'log' || n.trigger === 'both' ? 1 : 0) | (n.trigger === 'alert' || n.trigger === 'both' ? 2 : 0);
    });
    if (nodes.length > 0) this.a.setTails(this.id, bytes, offsets, logs);
  }

  spliceLines(batch: ProjectedBatch, plan: Int32Array, planLength: number, out: Uint8Array, at: number): number {
    return this.a.spliceLines(this.id, batch.buf, batch.lines, plan, planLength, out, at);
  }

  dispose(): void {
    this.a.setProjection(this.id, null);
  }

  /** The lines of bytes[0, length) (as splitJsonLines splits them) and their projections. */
  project(bytes: Uint8Array, length: number): ProjectedBatch {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, length) as SliceBuffer;
    const r = this.a.projectLines(this.id, buf, length);
    const batch = new ProjectedBatch(this, buf, r);
    const n = r[0]!;
    const projected = batch.projected;
    const opsAt = 1 + LINE_INTS * n;
    for (let i = 0; i < n; i++) {
      const at = 1 + LINE_INTS * i;
      const count = r[at + 3]!;
      if (count < 0) {
        projected[i] = projectJson(batch.text(i), this.projection);
        continue;
      }
      try {
        projected[i] = this.replay(r, opsAt + 4 * r[at + 2]!, count, buf, r[at]!);
        batch.native++;
      } catch {
        // a value JSON.parse refuses: projectJson gives its own answer for the line
        projected[i] = projectJson(batch.text(i), this.projection);
      }
    }
    return batch;
  }

  private replay(r: Int32Array, at: number, count: number, buf: SliceBuffer, base: number): Record<string, unknown> {
    const keys = this.keys;
    const stack: Array<Record<string, unknown> | unknown[]> = [];
    let cur: Record<string, unknown> | unknown[] | undefined;
    let root: Record<string, unknown> | undefined;
    for (let k = 0; k < count; k++, at += 4) {
      const op = r[at]!;
      const code = op & 15;
      if (code === OP_END) {
        cur = stack.pop();
        continue;
      }
      const key = r[at + 1]!;
      let v: unknown;
      if (code === OP_VALUE) {
        const flags = op >> 4;
        const a = base + r[at + 2]!;
        const b = base + r[at + 3]!;
        if (flags & PLAIN_STRING) v = flags & ASCII ? buf.latin1Slice(a + 1, b - 1) : buf.utf8Slice(a + 1, b - 1);
        else v = JSON.parse(flags & ASCII ? buf.latin1Slice(a, b) : buf.utf8Slice(a, b));
      } else {
        v = code === OP_OBJECT ? (Object.create(null) as Record<string, unknown>) : [];
      }
      if (cur === undefined) root = v as Record<string, unknown>;
      else if (key < 0) (cur as unknown[]).push(v);
      else (cur as Record<string, unknown>)[keys[key]!] = v;
      if (code !== OP_VALUE) {
        if (cur !== undefined) stack.push(cur);
        cur = v as Record<string, unknown> | unknown[];
      }
    }
    return root!;
  }
}
