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
}


const OP_OBJECT = 1;
const OP_ARRAY = 2;
const OP_END = 3;
const OP_VALUE = 4;
const PLAIN_STRING = 1;
const ASCII = 2;

let nextId = 1;

// Buffer's own decoders, without toString's argument checks (they exist on every Buffer).
type SliceBuffer = Buffer & { utf8Slice(start: number, end: number): string; latin1Slice(start: number, end: number): string };

/** The decoded lines of a batch, and for each the projection (undefined: the tree reads it from the text). */
export interface ProjectedBatch {
  texts: string[];
  projected: Array<Record<string, unknown> | undefined>;
  /** How many lines the addon projected (the others went through projectJson). */
  native: number;
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

  dispose(): void {
    this.a.setProjection(this.id, null);
  }

  /** The lines of bytes[0, length) (as splitJsonLines splits them) and their projections. */
  project(bytes: Uint8Array, length: number): ProjectedBatch {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, length) as SliceBuffer;
    const r = this.a.projectLines(this.id, buf, length);
    const n = r[0]!;
    const texts: string[] = new Array(n);
    const projected: Array<Record<string, unknown> | undefined> = new Array(n);
    const opsAt = 1 + 4 * n;
    let native = 0;
    for (let i = 0; i < n; i++) {
      const start = r[1 + 4 * i]!;
      const end = r[2 + 4 * i]!;
      const text = buf.utf8Slice(start, end);
      texts[i] = text;
      const count = r[4 + 4 * i]!;
      if (count < 0) {
        projected[i] = projectJson(text, this.projection);
        continue;
      }
      try {
        projected[i] = this.replay(r, opsAt + 4 * r[3 + 4 * i]!, count, buf, start);
        native++;
      } catch {
        // a value JSON.parse refuses: projectJson gives its own answer for the line
        projected[i] = projectJson(text, this.projection);
      }
    }
    return { texts, projected, native };
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
