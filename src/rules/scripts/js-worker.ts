import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { FromInterp, ToInterp } from './protocol.js';

// The JavaScript script shim: a worker thread that loads one NAME.js/NAME.mjs
// and runs its `check(event)` for each call, one at a time (the pool's
// per-call timeout relies on results coming back in order).

const port = parentPort!;
const send = (m: FromInterp) => port.postMessage(m);
let nextRid = 1;
const fetches = new Map<number, { resolve(v: { bytes: Uint8Array; sha256: string }): void; reject(e: Error): void }>();

(globalThis as Record<string, unknown>).skafe = {
  log(msg: unknown) {
    send({ t: 'log', msg: String(msg) });
  },
  fetchFile(path: string): Promise<{ bytes: Uint8Array; sha256: string }> {
    const rid = nextRid++;
    return new Promise((resolve, reject) => {
      fetches.set(rid, { resolve, reject });
      send({ t: 'fetch', rid, path: String(path) });
    });
  },
};

type Check = (event: unknown) => unknown;
const queue: Array<Extract<ToInterp, { t: 'call' }>> = [];
let check: Check | undefined;
let busy = false;

async function pump(): Promise<void> {
  if (busy || !check) return;
  busy = true;
  while (queue.length) {
    const c = queue.shift()!;
    try {
      const v = await check('json' in c ? JSON.parse(c.json) : c.event);
      send({ t: 'result', id: c.id, ok: true, value: Boolean(v) });
    } catch (e) {
      send({ t: 'result', id: c.id, ok: false, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  }
  busy = false;
}

port.on('message', (m: ToInterp) => {
  if (m.t === 'call') {
    queue.push(m);
    void pump();
  } else if (m.t === 'fetched') {
    const f = fetches.get(m.rid);
    if (!f) return;
    fetches.delete(m.rid);
    if (m.ok) f.resolve({ bytes: Buffer.from(m.data, 'base64'), sha256: m.sha256 });
    else f.reject(new Error(m.error));
  }
});

try {
  const mod = (await import(pathToFileURL((workerData as { file: string }).file).href)) as Record<string, unknown>;
  const def = mod.default as Record<string, unknown> | Check | undefined;
  const found = mod.check ?? (typeof def === 'function' ? def : def?.check);
  if (typeof found !== 'function') throw new Error('the script defines no check(event) function (export it, or default-export it)');
  check = found as Check;
  send({ t: 'ready' });
  void pump();
} catch (e) {
  send({ t: 'fatal', error: e instanceof Error ? e.message : String(e) });
}
