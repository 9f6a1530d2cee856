import { createHash } from 'node:crypto';
import type { ScriptSpec } from '../load.js';
import type { Logger } from '../../stage.js';
import { startInterpreter, DEFAULT_COMMANDS, type Interpreter, type InterpreterCommands } from './interpreter.js';
import { FETCH_NOT_CONNECTED, type FetchFile, type FromInterp } from './protocol.js';

// A pool of long-lived interpreters for one script. Calls are pipelined to the
// least busy interpreter (up to DEPTH each); since an interpreter answers in
// order, only the call at the head of its line is running, and only that one's
// clock runs. A call past its timeout fails (no match), its interpreter is
// killed and replaced, and the calls queued behind it are re-sent once to a
// healthy one. A script error never rejects: it is a `false`, counted, and
// logged once per script.

export interface ScriptPoolOptions {
  size: number;
  timeoutMs: number;
  log: Logger;
  count: (name: 'scriptErrors' | 'scriptTimeouts' | 'scriptRestarts' | 'scriptCalls', n?: number) => void;
  fetchFile?: FetchFile | undefined;
  commands?: InterpreterCommands;
  /** Abandon start() after this long with an error (default 10 s). */
  startTimeoutMs?: number;
}

interface Call {
  id: number;
  /** The event, or its JSON text when `encoded`. */
  event: unknown;
  encoded: boolean;
  resolve(v: boolean): void;
  attempts: number;
  timer?: NodeJS.Timeout;
}

interface Slot {
  interp: Interpreter;
  ready: boolean;
  inflight: Call[];
  dead: boolean;
}

// Per interpreter, how many calls may sit in its pipe: enough to hide the
// round trip, few enough that a kill re-sends little.
const DEPTH = 64;
// Calls waiting for any interpreter. Callers are bounded by the rules stage's
// in-flight batches; past this cap a call fails at once (counted) rather than
// queueing without end.
const MAX_WAITING = 65536;
// An interpreter that keeps dying is restarted no faster than this.
const RESTART_BACKOFF_MS = 1000;
const MAX_FETCH_BYTES = 64 * 1024 * 1024;

export class ScriptPool {
  private slots: Slot[] = [];
  private waiting: Call[] = [];
  private nextId = 1;
  private closed = false;
  private reported = new Set<string>();
  private recentDeaths = 0;

  constructor(readonly spec: ScriptSpec, private readonly opts: ScriptPoolOptions) {}

  /** Start every interpreter; resolves when all loaded the script, rejects with the script's load error. */
  start(): Promise<void> {
    const starts: Promise<void>[] = [];
    for (let i = 0; i < this.opts.size; i++) starts.push(this.spawn());
    return Promise.all(starts).then(
      () => undefined,
      (e) => {
        void this.close();
        throw e;
      },
    );
  }

  private spawn(): Promise<void> {
    return new Promise((resolve, reject) => {
      const interp = startInterpreter(this.spec, this.opts.commands ?? DEFAULT_COMMANDS);
      const slot: Slot = { interp, ready: false, inflight: [], dead: false };
      this.slots.push(slot);
      const startTimer = setTimeout(() => {
        reject(new Error(`script ${this.spec.file}: interpreter did not start within ${this.opts.startTimeoutMs ?? 10000} ms`));
        interp.kill();
      }, this.opts.startTimeoutMs ?? 10000);
      let stderrTail: string[] = [];
      interp.onStderr = (line) => {
        if (!slot.ready) stderrTail = [...stderrTail, line].slice(-5);
        this.opts.log.warn(`script ${this.spec.name}: ${line}`, { script: this.spec.file });
      };
      interp.onMessage = (m) => this.onMessage(slot, m, (err) => {
        clearTimeout(startTimer);
        if (err === null) {
          resolve();
        } else reject(new Error(`script ${this.spec.file} failed to load: ${err}`));
      });
      interp.onExit = (why) => {
        clearTimeout(startTimer);
        if (!slot.ready) reject(new Error(`script ${this.spec.file}: interpreter ${why} before it was ready${stderrTail.length ? ': ' + stderrTail.join(' | ') : ''}`));
        this.onDeath(slot, why);
      };
    });
  }

  private onMessage(slot: Slot, m: FromInterp, started: (err: string | null) => void): void {
    switch (m.t) {
      case 'ready':
        slot.ready = true;
        started(null);
        this.dispatch();
        return;
      case 'fatal':
        started(m.error);
        slot.interp.kill();
        return;
      case 'log':
        this.opts.log.info(`script ${this.spec.name}: ${m.msg}`, { script: this.spec.file });
        return;
      case 'fetch':
        void this.fetch(slot, m.rid, m.path);
        return;
      case 'result': {
        const head = slot.inflight[0];
        if (!head || head.id !== m.id) {
          this.report('protocol', `interpreter answered call ${m.id} out of order; restarting it`);
          slot.interp.kill();
          return;
        }
        slot.inflight.shift();
        clearTimeout(head.timer);
        this.recentDeaths = 0;
        if (m.ok) head.resolve(m.value);
        else {
          this.opts.count('scriptErrors');
          this.report('error', `check() failed (counted as no match): ${m.error}`);
          head.resolve(false);
        }
        this.armHead(slot);
        this.dispatch();
      }
    }
  }

  private async fetch(slot: Slot, rid: number, p: string): Promise<void> {
    const head = slot.inflight[0];
    let event: unknown;
    const f = this.opts.fetchFile;
    try {
      event = head?.encoded ? JSON.parse(head.event as string) : head?.event;
      if (!f) throw new Error(FETCH_NOT_CONNECTED);
      const { bytes, sha256 } = await f({ path: p, event });
      if (bytes.length > MAX_FETCH_BYTES) throw new Error(`fetchFile: ${p} is larger than ${MAX_FETCH_BYTES} bytes`);
      const sum = sha256 || createHash('sha256').update(bytes).digest('hex');
      slot.interp.send({ t: 'fetched', rid, ok: true, data: Buffer.from(bytes).toString('base64'), sha256: sum, size: bytes.length });
    } catch (e) {
      slot.interp.send({ t: 'fetched', rid, ok: false, error: (e as Error).message });
    }
  }

  /** Start the clock of the call now at the head of this interpreter's line. */
  private armHead(slot: Slot): void {
    const head = slot.inflight[0];
    if (!head || head.timer) return;
    head.timer = setTimeout(() => {
      this.opts.count('scriptTimeouts');
      this.report('timeout', `check() took longer than ${this.opts.timeoutMs} ms (counted as no match); interpreter replaced`);
      slot.inflight.shift();
      head.resolve(false);
      // The calls queued behind it never ran: they go to another interpreter, not blamed.
      this.requeue(slot.inflight);
      slot.inflight = [];
      slot.dead = true;
      slot.interp.kill();
      this.replace(slot);
    }, this.opts.timeoutMs);
    head.timer.unref?.();
  }

  private requeue(calls: Call[]): void {
    for (const c of [...calls].reverse()) {
      clearTimeout(c.timer);
      delete c.timer;
      if (++c.attempts > 2) {
        this.opts.count('scriptErrors');
        c.resolve(false);
      } else this.waiting.unshift(c);
    }
  }

  private onDeath(slot: Slot, why: string): void {
    if (slot.dead) return;
    slot.dead = true;
    const [head, ...rest] = slot.inflight;
    slot.inflight = [];
    if (head) {
      clearTimeout(head.timer);
      // The call it was running when it died is the likely cause: no match.
      this.opts.count('scriptErrors');
      this.report('died', `interpreter ${why} while running check() (counted as no match); replaced`);
      head.resolve(false);
    }
    this.requeue(rest);
    this.replace(slot);
  }

  /** Drop a dead interpreter from the pool and start its replacement. */
  private replace(slot: Slot): void {
    this.slots = this.slots.filter((s) => s !== slot);
    if (this.closed || !slot.ready) {
      // Never got ready: start() reports it; do not loop restarting a script that cannot load.
      if (!this.closed && this.slots.length === 0) this.failWaiting('no interpreter could start');
      return;
    }
    this.opts.count('scriptRestarts');
    const delay = this.recentDeaths++ > 3 ? RESTART_BACKOFF_MS : 0;
    setTimeout(() => {
      if (this.closed) return;
      this.spawn().catch((e) => {
        this.report('restart', `replacement interpreter failed: ${(e as Error).message}`);
        if (this.slots.length === 0) this.failWaiting((e as Error).message);
      });
    }, delay).unref?.();
    this.dispatch();
  }

  private failWaiting(why: string): void {
    const w = this.waiting;
    this.waiting = [];
    if (w.length) this.report('nointerp', `${why}; ${w.length} call(s) counted as no match`);
    for (const c of w) {
      this.opts.count('scriptErrors');
      c.resolve(false);
    }
  }

  private report(kind: string, msg: string): void {
    if (this.reported.has(kind)) return;
    this.reported.add(kind);
    this.opts.log.error(`script ${this.spec.name} (${this.spec.file}): ${msg}`, { code: 'SKAFE_SCRIPT', script: this.spec.file });
  }

  /** Run check(event); never rejects. `encoded`: the event is given as its JSON text. */
  call(event: unknown, encoded = false): Promise<boolean> {
    this.opts.count('scriptCalls');
    if (this.closed) return Promise.resolve(false);
    if (this.waiting.length >= MAX_WAITING) {
      this.opts.count('scriptErrors');
      this.report('overload', `more than ${MAX_WAITING} calls waiting; extra calls counted as no match`);
      return Promise.resolve(false);
    }
    return new Promise((resolve) => {
      this.waiting.push({ id: this.nextId++, event, encoded, resolve, attempts: 0 });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.waiting.length) {
      let best: Slot | undefined;
      for (const s of this.slots) {
        if (!s.ready || s.dead || s.inflight.length >= DEPTH) continue;
        if (!best || s.inflight.length < best.inflight.length) best = s;
      }
      if (!best) return;
      const c = this.waiting.shift()!;
      best.inflight.push(c);
      best.interp.call(c.id, c.event, c.encoded);
      this.armHead(best);
    }
  }

  /** Stop the interpreters once every call already made has its answer. */
  async close(): Promise<void> {
    while (!this.closed && (this.waiting.length || this.slots.some((s) => s.inflight.length))) {
      await new Promise((r) => setTimeout(r, 10));
    }
    this.closed = true;
    for (const s of this.slots) s.interp.kill();
    this.slots = [];
  }
}
