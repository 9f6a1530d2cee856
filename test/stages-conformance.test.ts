// One conformance suite for stages (Level's habit): every transform and the
// file sink pass the same checks — end of input reaches the end, a consumer
// that stops reading stops the stage within a bounded number of batches
// (backpressure, not buffering), and destroy() tears down promptly.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { once } from 'node:events';
import type { Duplex, Writable } from 'node:stream';
import { createStage, parseRecordLine, type AuditRecord } from '../src/index.js';
import { fixtures } from './helpers/env.js';
import { tmpdir } from './helpers/run.js';

const records: AuditRecord[] = fs
  .readFileSync(fixtures('dev-1', 'audit.log'), 'utf8')
  .split('\n')
  .filter(Boolean)
  .map((l) => parseRecordLine(l))
  .filter((r): r is AuditRecord => !('error' in r));

const event = (i: number) => ({ '@timestamp': '2026-01-01T00:00:00.000Z', event: { id: `1.000:${i}`, kind: 'event' }, user: { name: 'root' }, auditd: { sequence: i, records: [] } });

interface Case {
  use: string;
  options: (dir: string) => Record<string, unknown>;
  /** A batch of input items; `n` makes them distinct. */
  batch: (n: number) => unknown[];
  /** Items out per batch in, when the stage passes everything through. */
  passThrough?: boolean;
}

const eventBatch = (n: number) => Array.from({ length: 64 }, (_, i) => event(n * 64 + i));
// Shift serials so each batch is whole events of its own.
const recordBatch = (n: number) => records.slice(0, 200).map((r) => ({ ...r, serial: r.serial + n * 100000, id: `${r.sec}.${String(r.msec).padStart(3, '0')}:${r.serial + n * 100000}` }));

const transforms: Case[] = [
  { use: 'coalesce', options: () => ({ workers: 0 }), batch: recordBatch },
  { use: 'filter', options: () => ({ where: { 'user.name': '^root$' } }), batch: eventBatch, passThrough: true },
  { use: 'throttle', options: () => ({ rate: 1e9, burst: 1e9 }), batch: eventBatch, passThrough: true },
  { use: 'enrich', options: () => ({ host_name: 'h' }), batch: eventBatch, passThrough: true },
  { use: 'server-enrich', options: () => ({ reverse_dns: 'off' }), batch: eventBatch, passThrough: true },
  {
    use: 'rules',
    options: (dir) => {
      fs.mkdirSync(path.join(dir, 'rules'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'rules', 'all.rules'), '[all]\nwatch = base\naction = match\ntrigger = log\nmatch_event.id = .\n');
      return { rulesdir: path.join(dir, 'rules'), workers: 1 };
    },
    batch: eventBatch,
    passThrough: true,
  },
];

for (const c of transforms) {
  t.test(`${c.use}: end of input, backpressure, teardown`, async (t) => {
    const dir = tmpdir(t);
    const log = { info() {}, warn() {}, error() {} };
    // end of input: everything written comes out and the readable side ends
    {
      const s = await createStage(c.use, c.options(dir), { log, baseDir: dir });
      let out = 0;
      s.on('data', (b: unknown[]) => (out += b.length));
      for (let i = 0; i < 5; i++) s.write(c.batch(i));
      s.end();
      await once(s, 'end');
      if (c.passThrough) t.equal(out, 5 * 64, 'every item came out');
      else t.ok(out > 0, `${out} items came out`);
      s.destroy();
    }
    // backpressure: nobody reads; writes must start returning false after a bounded number of batches
    {
      const s: Duplex = await createStage(c.use, c.options(dir), { log, baseDir: dir });
      let accepted = 0;
      while (accepted < 1000 && s.write(c.batch(accepted))) accepted++;
      t.ok(accepted < 100, `stopped accepting after ${accepted} batches with no reader`);
      // teardown: destroy closes promptly even with data buffered
      const closed = once(s, 'close');
      s.destroy();
      await Promise.race([closed, new Promise((_, rej) => setTimeout(() => rej(new Error('no close within 5 s')), 5000))]);
      t.pass('closed after destroy');
    }
  });
}

t.test('jsonl sink: finish after end, backpressure while the disk write is pending, teardown', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'o.jsonl');
  const s = (await createStage('jsonl', { path: file })) as unknown as Writable;
  let accepted = 0;
  while (accepted < 1000 && s.write(eventBatch(accepted))) accepted++;
  t.ok(accepted < 100, `buffered at most ${accepted} batches before asking the writer to wait`);
  s.end();
  await once(s, 'finish');
  t.equal(fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length, (accepted + 1) * 64, 'every line written by finish');
  const s2 = (await createStage('jsonl', { path: file })) as unknown as Writable;
  const closed = once(s2, 'close');
  s2.destroy();
  await closed;
  t.pass('closed after destroy');
});
