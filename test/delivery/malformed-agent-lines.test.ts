// An agent's batch is stored as sent and acknowledged before anyone reads it,
// so lines that are not JSON objects reach the server's queue. The server must
// not stop on them (a parse error thrown on every restart would wedge it on
// the same entry for good), must not write broken JSON into its logs, and must
// not lose them: each is kept as an event holding its text (event.original),
// counted and reported. An agent cannot pass off its events as another's.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { makeCerts, type CertSet } from '../helpers/certs.js';
import { need } from '../helpers/env.js';
import { memoryLogger, startServer, readEventLog } from '../helpers/delivery.js';
import { encodeJson, encodeBatch, MsgType, PROTOCOL_VERSION, decodeAck } from '../../src/link/protocol.js';
import { FrameDecoder } from '../../src/link/frame.js';
import { packLines } from '../../src/link/codec.js';
import { stages as registry } from '../../src/registry.js';
import { defineStage, isEncoded, MAX_BATCH } from '../../src/stage.js';
import { Transform } from 'node:stream';
import zlib from 'node:zlib';
import crypto from 'node:crypto';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// What a broken or hostile agent may send, one event per line. The first is
// valid JSON, but not an object; the blank line carries nothing.
const LINES = [
  '{"event":{"id":"ok-1"},"process":{"pid":1}}',
  '[1,2]',
  '{"event":{"id":"cut-short"},"process":{"pid":',
  '{"event":{"id":"forged"},"agent":{"name":"other-host","version":"9"}}',
  '{"event":{"id":"forged-escaped"},"\\u0061gent":{"name":"other-host"}}',
  '{"event":{"id":"spaced"}} ',
  '{}',
  '',
  'not json at all',
  '{"event":{"id":"control"},"message":"a\u0001b"}',
  '{"event":{"id":"ok-2"},"deep":' + '['.repeat(99) + ']'.repeat(99) + '}',
  '{"event":{"id":"too-deep"},"deep":' + '['.repeat(20000) + ']'.repeat(20000) + '}',
  '{"event":{"id":"nested-agent-key"},"http":{"agent":"curl"}}',
];
const MALFORMED = [LINES[1], LINES[2], LINES[8], LINES[9], LINES[11]];

/** A batch as sent: its packed bytes, how many events it claims, and its first offset (default: right after the previous one). */
interface RawBatch {
  data: Buffer;
  count: number;
  first?: number;
}

/** Connects as agent-1, sends each batch once the server grants credit, and resolves with the acked offsets when `lastOffset` is acked. */
async function sendAsAgent(certs: CertSet, port: number, batches: Array<string[] | RawBatch>, lastOffset?: number): Promise<number[]> {
  const acks: number[] = [];
  const sock = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(certs.ca), cert: fs.readFileSync(certs.client.cert), key: fs.readFileSync(certs.client.key), servername: 'localhost' });
  const decoder = new FrameDecoder();
  let next = 0;
  const want = lastOffset ?? batches.reduce((n, b) => n + (Array.isArray(b) ? b.length : b.count), 0) - 1;
  await new Promise<void>((resolve, reject) => {
    sock.on('error', reject);
    sock.on('close', () => resolve());
    sock.on('secureConnect', () => sock.write(encodeJson(MsgType.HELLO, { v: PROTOCOL_VERSION, agent: 'agent-1', spool: 'cd'.repeat(16), next: 0 })));
    sock.on('data', async (d: Buffer) => {
      for (const f of decoder.push(d)) {
        if (f.type === MsgType.ACK) {
          const a = decodeAck(f);
          acks.push(a.acked);
          if (a.acked === want) sock.end();
        }
        if (f.type === MsgType.WELCOME || f.type === MsgType.ACK) {
          while (batches.length) {
            const b = batches.shift()!;
            const raw = Array.isArray(b) ? { data: await packLines(b), count: b.length } : b;
            const first = raw.first ?? next;
            sock.write(encodeBatch({ first, count: raw.count, data: raw.data }));
            next = first + raw.count;
          }
        }
      }
    });
    setTimeout(() => sock.destroy(new Error('no acknowledgement within 20 s')), 20_000).unref();
  });
  return acks;
}

/** Brotli of `bytes` bytes of JSON white space around one small event: a few kilobytes that expand to `bytes`. */
async function bomb(bytes: number): Promise<Buffer> {
  const z = zlib.createBrotliCompress({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
  const out: Buffer[] = [];
  z.on('data', (c: Buffer) => out.push(c));
  const chunk = Buffer.alloc(1024 * 1024, 0x20);
  z.write('{"event":{"id":"bomb"},"pad":"');
  for (let n = 0; n < bytes; n += chunk.length) if (!z.write(chunk)) await new Promise((r) => z.once('drain', r));
  z.end('"}');
  await new Promise((r) => z.once('end', r));
  return Buffer.concat(out);
}

type Tap = { teardown(fn: () => unknown): void };

/** Certificates, a directory and a server (listen → queue → `extra` → event log), all gone when the test ends. */
async function serverFor(t: Tap, o: { extra?: (dir: string) => object[]; queue?: object; listen?: object } = {}) {
  const certs = makeCerts();
  t.teardown(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-agent-lines-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const slog = memoryLogger();
  const eventLog = path.join(dir, 'events.jsonl');
  const server = await startServer({ certs, queueDir: path.join(dir, 'queue'), eventLog, log: slog, extra: o.extra?.(dir), queue: o.queue, listen: o.listen });
  t.teardown(async () => {
    server.pipeline.stop();
    await server.done;
  });
  return { certs, port: server.port, eventLog, slog, queue: server.pipeline.stages.find((s) => s.use === 'queue')!.counters, listen: server.pipeline.stages.find((s) => s.use === 'listen')!.counters };
}

/** The agent's events in the event log (the server's status events left out) once `done` holds of them, or after 5 s. */
async function agentEvents(eventLog: string, done: (events: Array<Record<string, any>>) => boolean): Promise<Array<Record<string, any>>> {
  let events: Array<Record<string, any>> = [];
  for (let i = 0; i < 50 && !done(events); i++) {
    await sleep(100);
    events = readEventLog(eventLog).filter((e) => e.event?.module !== 'skafe'); // throws if a line is not JSON
  }
  return events;
}

for (const [name, extra] of [
  ['text path (queue → event log)', []],
  ['object path (queue → a stage that takes objects → event log)', [{ use: 'throttle', rate: 1e6 }]],
  ['server shape (queue → server-enrich → rules → event log)', 'rules'],
] as const) {
  t.test(name, async (t) => {
    if (!need(t as never, { tool: 'openssl' })) return;
    const extraStages = (dir: string): object[] => {
      if (extra !== 'rules') return [...extra];
      fs.mkdirSync(path.join(dir, 'rules'));
      fs.writeFileSync(path.join(dir, 'rules', 'all.rules'), '[catchall]\nwatch = base\naction = match\ntrigger = log\n');
      return [{ use: 'server-enrich', reverse_dns: 'off' }, { use: 'rules', rulesdir: path.join(dir, 'rules'), workers: 1 }];
    };
    const { certs, port, eventLog, slog, queue } = await serverFor(t, { extra: extraStages });

    // The bad batch, then a good one: the server goes on past the first.
    const acks = await sendAsAgent(certs, port, [LINES, ['{"event":{"id":"after"}}']]);
    t.equal(acks.at(-1), LINES.length, 'both batches acknowledged');
    const events = await agentEvents(eventLog, (es) => es.some((e) => e.event?.id === 'after'));
    t.ok(events.some((e) => e.event?.id === 'after'), 'the batch after the bad lines came through');
    t.equal(events.length, LINES.length, 'every line but the blank one is in the log, and the one after');

    for (const e of events) t.equal(e.agent?.name, 'agent-1', `${JSON.stringify(e.event)}: agent.name is the link's`);
    const forged = events.find((e) => e.event?.id === 'forged')!;
    t.equal(forged.agent.version, '9', "the agent's other agent fields are kept");
    const kept = events.filter((e) => e.error?.code === 'SKAFE_MALFORMED_EVENT');
    t.same(
      kept.map((e) => e.event.original),
      MALFORMED,
      'each line that is not a JSON object is kept whole, in order, as event.original',
    );
    t.match(kept[0]!.error.message, /array, not an object/);
    t.match(kept[1]!.error.message, /JSON/);
    t.equal(events.find((e) => e.event?.id === 'nested-agent-key')?.http?.agent, 'curl', 'an agent key deeper in the event is not touched');
    t.ok(events.some((e) => e.event?.id === 'ok-2' && Array.isArray(e.deep)), 'an event 100 levels deep passes');
    t.match(kept[4]!.error.message, /deeper than 100 levels/, 'one deeper is kept as text (JSON.stringify would overflow on it)');
    t.equal(queue.malformed, MALFORMED.length + 1, 'malformed lines and the blank one counted');
    const logged = slog.lines.join('\n');
    t.match(logged, /SKAFE_MALFORMED_EVENT/, 'reported in the server log');
    t.match(logged, /agent agent-1 sent an event that is not a JSON object .*line 2 of queue entry/, 'the report names the agent and the line');

    if (extra === 'rules') {
      const lines = fs.readFileSync(eventLog, 'utf8').split('\n').filter(Boolean);
      t.ok(
        lines.filter((l) => !l.includes('"module":"skafe"')).every((l) => l.includes('"rule":{"name":"catchall"')),
        'the rules saw every kept event, the malformed ones too',
      );
    }
  });
}

t.test('a batch that expands past max_expanded_bytes is dropped and reported; the server goes on', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  for (const [label, cap, size] of [
    ['max_expanded_bytes 1 MiB, a 2 MiB batch', 1024 * 1024, 2 * 1024 * 1024],
    ['the default (256 MiB), a 300 MiB batch', undefined, 300 * 1024 * 1024],
  ] as const) {
    await t.test(label, async (t) => {
      const { certs, port, eventLog, slog, queue } = await serverFor(t, { queue: cap ? { max_expanded_bytes: cap } : {} });
      const packed = await bomb(size);
      t.ok(packed.length < 64 * 1024, `${packed.length} bytes packed`);
      // the bomb, a good event, then the bomb again over offsets 0–2 (straddling what was acknowledged)
      const acks = await sendAsAgent(certs, port, [{ data: packed, count: 1 }, ['{"event":{"id":"after-bomb"}}'], { data: packed, count: 3, first: 0 }], 2);
      t.equal(acks.at(-1), 2, 'every batch acknowledged');
      const events = await agentEvents(eventLog, (es) => es.some((e) => e.event?.id === 'after-bomb'));
      t.same(events.map((e) => e.event.id), ['after-bomb'], 'the good event came through, nothing else');
      // the first of the two is logged (either may come first: the straddling one is seen as it arrives,
      // the stored one when it is read), the other counted, as every problem of a kind
      t.match(
        slog.lines.join('\n'),
        new RegExp(`(queue entry \\d+|batch 0–2) from agent-1 does not unpack \\(it expands past max_expanded_bytes ${cap ?? 256 * 1024 * 1024}\\); (acknowledged and )?dropped \\(1 events\\)`),
        'reported',
      );
      t.equal(queue.dropped, 2, 'both counted as dropped');
    });
  }
});

t.test('a batch holding another number of events than it claims: all kept, reported', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const { certs, port, eventLog, slog, queue } = await serverFor(t);
  const three = ['{"event":{"id":"c1"}}', '{"event":{"id":"c2"}}', '{"event":{"id":"c3"}}'];
  const acks = await sendAsAgent(certs, port, [{ data: await packLines(three), count: 1 }, ['{"event":{"id":"c4"}}']]);
  t.equal(acks.at(-1), 1, 'both batches acknowledged by their claimed offsets');
  const events = await agentEvents(eventLog, (es) => es.length >= 4);
  t.same(events.map((e) => e.event.id), ['c1', 'c2', 'c3', 'c4'], 'every event kept, in order');
  t.equal(queue.extra.countMismatch, 1, 'counted');
  t.match(slog.lines.join('\n'), /queue entry \d+ from agent-1 \(offsets 0–0\) holds 3 events, not the 1 its batch claimed; all are kept/, 'reported');
});

t.test('a batch holding more events than max_batch_events is dropped and reported; the server goes on', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const tiny = (n: number) => Array.from({ length: n }, (_v, i) => `{"i":${i}}`);
  for (const [label, cap, make] of [
    ['the default (65,536): 70,000 lines', undefined, async () => ({ data: await packLines(tiny(70_000)), count: 70_000 })],
    ['the default: a JSON array of 70,000 events', undefined, async () => ({ data: zlib.brotliCompressSync(`[${tiny(70_000).join(',')}]`), count: 70_000 })],
    ['max_batch_events 1000: 1001 lines', 1000, async () => ({ data: await packLines(tiny(1001)), count: 1001 })],
  ] as const) {
    await t.test(label, async (t) => {
      const { certs, port, eventLog, slog, queue } = await serverFor(t, { queue: cap ? { max_batch_events: cap } : {} });
      const big = await make();
      const n = big.count;
      // the batch, a good event, then the batch again over offsets 0…n+1 (straddling what was acknowledged)
      const acks = await sendAsAgent(certs, port, [big, ['{"event":{"id":"after-big"}}'], { ...big, count: n + 2, first: 0 }], n + 1);
      t.equal(acks.at(-1), n + 1, 'every batch acknowledged');
      const events = await agentEvents(eventLog, (es) => es.some((e) => e.event?.id === 'after-big'));
      t.same(events.map((e) => e.event?.id), ['after-big'], 'the good event came through, nothing else');
      t.match(
        slog.lines.join('\n'),
        new RegExp(`(queue entry \\d+ from agent-1|batch 0–${n + 1} from agent-1) does not unpack \\(it holds more events than max_batch_events ${cap ?? 65536}\\); (acknowledged and )?dropped`),
        'reported, naming the limit',
      );
      t.equal(queue.dropped, n + 1, 'both counted as dropped (of the second, the one event past what was acknowledged)');
    });
  }
  await t.test('max_batch_events 1000: 1000 lines are kept', async (t) => {
    const { certs, port, eventLog, queue } = await serverFor(t, { queue: { max_batch_events: 1000 } });
    const acks = await sendAsAgent(certs, port, [{ data: await packLines(tiny(1000)), count: 1000 }]);
    t.equal(acks.at(-1), 999, 'acknowledged');
    const events = await agentEvents(eventLog, (es) => es.length >= 1000);
    t.equal(events.length, 1000, 'all logged');
    t.equal(queue.dropped, 0, 'nothing dropped');
  });
});

// A stage that notes the size of each batch it passes on, as it got it (encoded or not).
const seen: Array<{ size: number; encoded: boolean }> = [];
registry['test-batch-sizes'] ??= defineStage({
  kind: 'transform',
  use: 'test-batch-sizes',
  description: 'notes batch sizes (tests)',
  schema: { type: 'object' },
  acceptsEncoded: true,
  create: () =>
    new Transform({
      objectMode: true,
      transform(b: unknown[], _e, cb) {
        seen.push({ size: b.length, encoded: isEncoded(b) });
        cb(null, b);
      },
    }),
});

t.test('an entry of more than MAX_BATCH events goes on in pieces of at most MAX_BATCH, every event in order', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  seen.length = 0;
  const n = 3 * MAX_BATCH + 100;
  const lines = Array.from({ length: n }, (_v, i) => `{"event":{"id":"e${i}"}}`);
  const { certs, port, eventLog } = await serverFor(t, { extra: () => [{ use: 'test-batch-sizes' }] });
  const acks = await sendAsAgent(certs, port, [lines, ['{"event":{"id":"last"}}']]);
  t.equal(acks.at(-1), n, 'acknowledged');
  const events = await agentEvents(eventLog, (es) => es.some((e) => e.event?.id === 'last'));
  t.same(
    events.map((e) => e.event.id),
    [...lines.map((_l, i) => `e${i}`), 'last'],
    'every event logged once, in order',
  );
  const agentBatches = seen.filter((b) => b.size > 1);
  t.ok(seen.every((b) => b.encoded), 'as text');
  t.ok(
    seen.every((b) => b.size <= MAX_BATCH),
    `no batch over ${MAX_BATCH} (sizes ${seen.map((b) => b.size).join(', ')})`,
  );
  t.ok(agentBatches.length >= 4, 'the entry went on in pieces');
});

t.test("an agent's batches in flight are held to max_pending_bytes, not credits × max_frame; nothing is lost", async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const budget = 1024 * 1024;
  const { certs, port, eventLog, slog, listen } = await serverFor(t, { listen: { max_pending_bytes: budget } });
  // 32 batches (the default credits) of 128 events with random padding: ~200 KB packed each, 6 MB in all
  const batches: Array<{ data: Buffer; count: number }> = [];
  const ids: string[] = [];
  for (let b = 0; b < 32; b++) {
    const lines: string[] = [];
    for (let i = 0; i < 128; i++) {
      ids.push(`p${b}-${i}`);
      lines.push(JSON.stringify({ event: { id: `p${b}-${i}` }, pad: crypto.randomBytes(1200).toString('base64') }));
    }
    batches.push({ data: await packLines(lines), count: 128 });
  }
  const largest = Math.max(...batches.map((b) => b.data.length));
  t.ok(largest > 100_000, `batches of up to ${largest} bytes packed`);
  const acks = await sendAsAgent(certs, port, batches);
  t.equal(acks.at(-1), 32 * 128 - 1, 'every batch acknowledged');
  const events = await agentEvents(eventLog, (es) => es.length >= ids.length);
  t.same(events.map((e) => e.event.id), ids, 'every event logged once, in order');
  t.ok(listen.extra.readPauses! >= 1, `reading paused ${listen.extra.readPauses} times`);
  t.ok(listen.extra.pendingBytesPeak! <= budget + 2 * largest, `at most ${listen.extra.pendingBytesPeak} bytes waited for the queue (budget ${budget})`);
  t.match(slog.lines.join('\n'), /reading from agents paused until the queue catches up/, 'reported');
});

t.test('frames not yet complete count against max_pending_bytes; once they alone hold it, agents are read one at a time to the end of their frame; nothing is lost', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const budget = 1024 * 1024;
  const { certs, port, eventLog, listen } = await serverFor(t, { listen: { max_pending_bytes: budget } });
  // 5 agents (one certificate, a spool each), each with one batch of ~410 KB packed
  // (incompressible padding). Each sends 300 KB of its frame, then the rest once the
  // listener has paused: 1.5 MB of frames not yet complete against a 1 MiB budget, and
  // nothing complete for the queue to store and free the budget with.
  const AGENTS = 5;
  const PART = 300 * 1024;
  const frames: Buffer[] = [];
  const ids: string[][] = [];
  for (let a = 0; a < AGENTS; a++) {
    const lines: string[] = [];
    ids.push([]);
    for (let i = 0; i < 128; i++) {
      ids[a]!.push(`a${a}-${i}`);
      lines.push(JSON.stringify({ event: { id: `a${a}-${i}` }, pad: crypto.randomBytes(3600).toString('base64') }));
    }
    frames.push(encodeBatch({ first: 0, count: 128, data: await packLines(lines) }));
  }
  const largest = Math.max(...frames.map((f) => f.length));
  t.ok(largest > PART + 64 * 1024, `frames of up to ${largest} bytes`);
  let pausedFirst = 0;
  let sendRest!: () => void;
  const rest = new Promise<void>((r) => (sendRest = r));
  const acked = frames.map(
    (frame, a) =>
      new Promise<boolean>((resolve) => {
        const sock = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(certs.ca), cert: fs.readFileSync(certs.client.cert), key: fs.readFileSync(certs.client.key), servername: 'localhost' });
        const decoder = new FrameDecoder();
        const timer = setTimeout(() => sock.destroy(), 30_000);
        sock.on('error', () => {});
        sock.on('close', () => {
          clearTimeout(timer);
          resolve(false);
        });
        sock.on('secureConnect', () => sock.write(encodeJson(MsgType.HELLO, { v: PROTOCOL_VERSION, agent: 'agent-1', spool: String(a).repeat(32), next: 0 })));
        sock.on('data', (d: Buffer) => {
          for (const f of decoder.push(d)) {
            if (f.type === MsgType.WELCOME) {
              sock.write(frame.subarray(0, PART));
              void rest.then(() => sock.write(frame.subarray(PART)));
            }
            if (f.type === MsgType.ACK && decodeAck(f).acked === 127) {
              clearTimeout(timer);
              resolve(true);
              sock.end();
            }
          }
        });
      }),
  );
  for (let i = 0; i < 100 && !listen.extra.readPauses; i++) await sleep(50);
  pausedFirst = listen.extra.readPauses ?? 0;
  sendRest();
  const ok = await Promise.all(acked);
  t.equal(pausedFirst, 1, 'reading paused on frames not yet complete alone');
  t.same(ok, frames.map(() => true), 'every agent had its batch acknowledged (none left waiting for the others)');
  const events = await agentEvents(eventLog, (es) => es.length >= AGENTS * 128);
  t.same(
    events.map((e) => e.event.id).sort(),
    ids.flat().sort(),
    'every event logged once',
  );
  for (let a = 0; a < AGENTS; a++) {
    const mine = events.filter((e) => e.event.id.startsWith(`a${a}-`)).map((e) => e.event.id);
    t.same(mine, ids[a], `agent ${a}'s events in order`);
  }
  t.ok(listen.extra.framesFinished! >= 1, `${listen.extra.framesFinished} connections read alone to the end of their frame`);
  t.ok(listen.extra.pendingBytesPeak! <= budget + largest, `at most ${listen.extra.pendingBytesPeak} bytes held (budget ${budget}, a frame ${largest})`);
});

t.test('before HELLO a connection may send only small frames: a large one is refused from its header', async (t) => {
  if (!need(t as never, { tool: 'openssl' })) return;
  const { certs, port, slog } = await serverFor(t);
  const sock = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(certs.ca), cert: fs.readFileSync(certs.client.cert), key: fs.readFileSync(certs.client.key), servername: 'localhost' });
  const decoder = new FrameDecoder();
  const reasons: string[] = [];
  await new Promise<void>((resolve) => {
    sock.on('error', () => {});
    sock.on('close', () => resolve());
    // a "HELLO" of 1 MiB: its header and a little of it
    const head = Buffer.alloc(5);
    head.writeUInt32BE(1024 * 1024 + 1);
    head.writeUInt8(MsgType.HELLO, 4);
    sock.on('secureConnect', () => sock.write(Buffer.concat([head, Buffer.alloc(1000, 0x20)])));
    sock.on('data', (d: Buffer) => {
      for (const f of decoder.push(d)) if (f.type === MsgType.REFUSE) reasons.push(JSON.parse(f.payload.toString()).reason);
    });
    setTimeout(() => sock.destroy(), 10_000).unref();
  });
  t.equal(reasons.length, 1, 'refused');
  t.match(reasons[0], /frame of 1048577 bytes exceeds the 65536-byte cap/, 'the reason names the cap');
  t.match(slog.lines.join('\n'), /refused .*exceeds the 65536-byte cap/, 'logged');
});
