// npm run bench (replay part): a log of ≥ 1,000,000 records, built by
// replicating a real capture with shifted times and serials, replayed through
// `file → coalesce → jsonl` and, in the same run, through laurel 0.5.1
// (enrichment and translation off, output to a file). Prints events/s, CPU
// seconds and peak RSS for both, and the ratios.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { measure, countLines, fmt, type Measured } from './measure.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 2);

export function buildLog(file: string, records: number, source = path.join(root, 'test/fixtures/dev-1/audit.log')): void {
  const lines = fs.readFileSync(source, 'utf8').split('\n').filter(Boolean);
  const re = /msg=audit\((\d+)\.(\d+):(\d+)\)/;
  const parsed = lines.map((l) => {
    const m = re.exec(l)!;
    return { pre: l.slice(0, m.index), post: l.slice(m.index + m[0].length), sec: Number(m[1]), ms: m[2]!, serial: Number(m[3]) };
  });
  const span = Math.max(...parsed.map((p) => p.sec)) - Math.min(...parsed.map((p) => p.sec)) + 1;
  const serialSpan = Math.max(...parsed.map((p) => p.serial)) + 1;
  const fd = fs.openSync(file, 'w');
  let n = 0;
  for (let rep = 0; n < records; rep++) {
    let chunk = '';
    for (const p of parsed) {
      chunk += `${p.pre}msg=audit(${p.sec + rep * span}.${p.ms}:${p.serial + rep * serialSpan})${p.post}\n`;
      n++;
    }
    fs.writeSync(fd, chunk);
  }
  fs.closeSync(fd);
}

function laurelConfig(dir: string): string {
  const conf = path.join(dir, 'laurel.toml');
  fs.writeFileSync(
    conf,
    `directory = "${dir}"
statusreport-period = 0
[auditlog]
file = "laurel.jsonl"
size = 100000000000
generations = 1
[transform]
execve-argv = [ "array" ]
[translate]
universal = false
user-db = false
[enrich]
pid = false
execve-env = []
container = false
script = false
`,
  );
  return conf;
}

export async function replayBench(): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'skafe-bench-replay-'));
  try {
    const log = path.join(dir, 'audit.log');
    buildLog(log, RECORDS);
    const records = countLines(log);
    const def = path.join(dir, 'replay.json');
    const out = path.join(dir, 'events.jsonl');
    fs.writeFileSync(def, JSON.stringify({ stages: [{ use: 'file', path: log }, { use: 'coalesce' }, { use: 'jsonl', path: out }] }));
    const laurel = execFileSync('sh', ['-c', 'command -v laurel || true']).toString().trim();
    const conf = laurelConfig(dir);
    let best: { skafe?: Measured & { events: number }; laurel?: Measured & { events: number } } = {};
    for (let run = 0; run < RUNS; run++) {
      fs.rmSync(out, { force: true });
      // The launcher as users run it (its shebang carries node's flags).
      const s = await measure(path.join(root, 'bin/skafe'), ['run', def, '--quiet']);
      const se = countLines(out);
      if (!best.skafe || s.wallS < best.skafe.wallS) best.skafe = { ...s, events: se };
      if (laurel) {
        fs.rmSync(path.join(dir, 'laurel.jsonl'), { force: true });
        const l = await measure(laurel, ['-c', conf], { stdinFile: log });
        const le = countLines(path.join(dir, 'laurel.jsonl'));
        if (!best.laurel || l.wallS < best.laurel.wallS) best.laurel = { ...l, events: le };
      }
    }
    const row = (name: string, m: Measured & { events: number }) =>
      `  ${name.padEnd(14)} ${fmt(m.events).padStart(9)} events  ${fmt(m.events / m.wallS).padStart(9)} events/s  ${fmt(m.wallS, 2).padStart(6)} s wall  ${fmt(m.cpuS, 2).padStart(6)} s CPU  ${fmt(m.peakRssMB, 1).padStart(7)} MB peak RSS`;
    console.log(`replay: ${fmt(records)} records (dev-1 replicated, shifted serials), best of ${RUNS}`);
    console.log(row('skafe', best.skafe!));
    if (best.laurel) {
      console.log(row('laurel', best.laurel));
      const s = best.skafe!;
      const l = best.laurel;
      console.log(
        `  ratio skafe/laurel: events/s ×${fmt(s.events / s.wallS / (l.events / l.wallS), 2)}, CPU s ×${fmt(s.cpuS / l.cpuS, 2)}, peak RSS ×${fmt(s.peakRssMB / l.peakRssMB, 2)}  (target: events/s ≥ 3×, skafe RSS < 200 MB)`,
      );
      console.log(`  events: skafe ${fmt(s.events)}, laurel ${fmt(l.events)}`);
    } else {
      console.log('  laurel not installed (apt-get install laurel): no ratio');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await replayBench();
