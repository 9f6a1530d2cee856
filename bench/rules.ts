// npm run bench (rules part): 100 match rules (perl and posix, depth 3, dotted
// and alias keys) over the dev-1 corpus replayed many times, with 1 and 2
// worker threads, against the same replay with no rule stage; then a Python
// script rule with a pool of 4. Brief: the machine is shared.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import coalesce from '../src/transforms/coalesce.js';
import rulesStage from '../src/transforms/rules.js';
import { StageCounters, MAX_BATCH, type StageContext } from '../src/stage.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const corpus = fs.readFileSync(path.join(root, 'test/fixtures/dev-1/audit.log'), 'utf8').trim().split('\n');
const { parseRecordLine } = await import('../src/audit/record.js');

function ctx(name: string): StageContext {
  return { baseDir: root, index: 0, name, counters: new StageCounters(), log: { info() {}, warn() {}, error() {} }, signal: new AbortController().signal, problem() {}, services: new Map() };
}

/** The corpus as parsed records, replayed `times` times with fresh serials so coalesce keeps every event. */
function records(times: number) {
  const base = corpus.map((l) => parseRecordLine(l)).filter((r): r is Exclude<typeof r, { error: string }> => !('error' in r));
  let i = 0;
  return Readable.from(
    (function* () {
      for (let k = 0; k < times; k++) {
        const shift = (k + 1) * 1_000_000;
        let batch = [];
        for (const r of base) {
          batch.push({ ...r, serial: r.serial + shift, id: `${r.sec}.${String(r.msec).padStart(3, '0')}:${r.serial + shift}` });
          if (batch.length === MAX_BATCH) {
            yield batch;
            batch = [];
          }
        }
        if (batch.length) yield batch;
        i++;
      }
    })(),
    { objectMode: true },
  );
}

function rulesDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-'));
  const keys = ['process.executable', 'bin', 'uname', 'user.name', 'syscall', 'auditd.data.syscall', 'comm', 'key', 'cwd', 'process.args'];
  let text = '';
  for (let i = 0; i < 100; i++) {
    const depth = i % 3;
    const name = `r${i}`;
    const watch = depth === 0 ? 'base' : `r${i - 1}`;
    const type = i % 2 ? 'posix' : 'perl';
    const k = keys[i % keys.length]!;
    const re = type === 'posix' ? `^[[:alnum:]/_.-]*${'abcdefghijklmnopqrstuvwxyz'[i % 26]}` : `(?:^|/)\\w*${'abcdefghijklmnopqrstuvwxyz'[i % 26]}\\w*$`;
    text += `[${name}]\nwatch = ${watch}\naction = match\nregextype = ${type}\ntrigger = ${i % 7 ? 'log' : 'both'}\nmatch_${k} = ${re}\n`;
  }
  fs.writeFileSync(path.join(dir, 'bench.rules'), text);
  return dir;
}

async function measure(label: string, times: number, withRules?: Record<string, unknown>): Promise<number> {
  let events = 0;
  let lines = 0;
  const co = await coalesce.create({} as never, ctx('coalesce'));
  const count = new Writable({ objectMode: true, highWaterMark: 8, write(b: unknown[], _e, cb) { lines += b.length; cb(); } });
  const counter = new (await import('node:stream')).Transform({ objectMode: true, highWaterMark: 8, transform(b: unknown[], _e, cb) { events += b.length; cb(null, b); } });
  const start = process.hrtime.bigint();
  const stages: NodeJS.ReadWriteStream[] = [co as never, counter];
  if (withRules) stages.push((await rulesStage.create(withRules as never, ctx('rules'))) as never);
  await pipeline([records(times), ...stages, count] as never);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  const rate = events / s;
  console.log(`${label.padEnd(44)} ${events} events in ${s.toFixed(2)} s = ${Math.round(rate)} events/s (${lines} lines out)`);
  return rate;
}

const times = Number(process.env.BENCH_TIMES ?? 40);
const dir = rulesDir();
const base = await measure('replay only (file records → coalesce)', times);
const w1 = await measure('+ rules, 100 match rules, 1 worker', times, { rulesdir: dir, workers: 1, reload: false });
const w2 = await measure('+ rules, 100 match rules, 2 workers', times, { rulesdir: dir, workers: 2, reload: false });
console.log(`rule stage cost: 1 worker ${(100 * (1 - w1 / base)).toFixed(0)}%, 2 workers ${(100 * (1 - w2 / base)).toFixed(0)}% of replay throughput; 2 workers / 1 worker = ${(w2 / w1).toFixed(2)}×`);

const pyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-py-'));
fs.writeFileSync(path.join(pyDir, 'py.rules'), '[tail]\nwatch = base\naction = script\ntrigger = log\nscript = tailcheck\n');
fs.copyFileSync(path.join(root, 'test/fixtures/rules/tailcheck-py/tailcheck.py'), path.join(pyDir, 'tailcheck.py'));
await measure('+ rules, Python script rule, pool of 4', Math.max(4, times / 4), { rulesdir: pyDir, workers: 0, scriptpool: 4, reload: false });
