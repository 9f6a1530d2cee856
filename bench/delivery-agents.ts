// A process hosting K bench agents: each is a real agent pipeline (in-memory
// event source → spool on disk → mutual-TLS link) with its own spool identity
// and client certificate. Driven by bench/delivery.ts; prints one JSON line
// when every agent has had all its events acknowledged.
import fs from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { makeContext } from '../src/pipeline.js';
import { StageCounters, MAX_BATCH, type Logger } from '../src/stage.js';
import spoolStage from '../src/transforms/spool.js';
import tlsStage from '../src/sinks/tls.js';
import type { Writable, Duplex } from 'node:stream';

const args = JSON.parse(process.argv[2]!) as {
  agents: number;
  first: number;
  events: number;
  /** events/s per agent; 0 = as fast as possible */
  rate: number;
  port: number;
  dir: string;
  templates: string;
  cert: string;
  key: string;
  ca: string;
};
const templates = fs
  .readFileSync(args.templates, 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => JSON.parse(l));
const quiet: Logger = { info() {}, warn: (m) => process.stderr.write(`agent: ${m}\n`), error: (m) => process.stderr.write(`agent: ${m}\n`) };

function source(agent: number): Readable {
  let sent = 0;
  const start = performance.now();
  return new Readable({
    objectMode: true,
    highWaterMark: 4,
    read() {
      if (sent >= args.events) return void this.push(null);
      const n = Math.min(args.rate ? Math.max(1, Math.round(args.rate / 200)) : MAX_BATCH, args.events - sent);
      const due = args.rate ? start + (sent / args.rate) * 1000 : 0;
      const emit = () => {
        const t = performance.timeOrigin + performance.now();
        const batch = [];
        for (let i = 0; i < n; i++) {
          const tpl = templates[(sent + i) % templates.length];
          batch.push({ ...tpl, event: { ...tpl.event, id: `bench-${agent}-${sent + i}` }, bench: { t } });
        }
        sent += n;
        this.push(batch);
      };
      const wait = due - performance.now();
      if (wait > 0) setTimeout(emit, wait);
      else emit();
    },
  });
}

const started = performance.now();
await Promise.all(
  Array.from({ length: args.agents }, async (_, i) => {
    const agent = args.first + i;
    const env = { baseDir: args.dir, log: quiet, services: new Map<string, unknown>(), signal: new AbortController().signal };
    const spool = (await spoolStage.create({ dir: path.join(args.dir, `spool-${agent}`), status_events: false }, makeContext('spool', 1, new StageCounters(), env))) as Duplex;
    const link = (await tlsStage.create({ servers: [`127.0.0.1:${args.port}`], cert: args.cert, key: args.key, ca: args.ca, name: `bench-${agent}` }, makeContext('tls', 2, new StageCounters(), env))) as Writable;
    await pipeline(source(agent), spool, link);
  }),
);
process.stdout.write(JSON.stringify({ done: true, seconds: (performance.now() - started) / 1000, rssMb: process.memoryUsage().rss / 2 ** 20, peakMb: peakRss() }) + '\n');

function peakRss(): number {
  try {
    return Number(/VmHWM:\s+(\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}
