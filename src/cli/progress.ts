import type { Pipeline, StageInfo } from '../pipeline.js';

/** A one-line progress display on a TTY: records read, events/s, share of the input file read. */
export class Progress {
  private timer: NodeJS.Timeout | undefined;
  private lastEvents = 0;
  private lastTime = Date.now();
  private readonly start = Date.now();

  constructor(
    private readonly p: Pipeline,
    private readonly out: NodeJS.WriteStream,
  ) {}

  begin(): void {
    this.timer = setInterval(() => this.draw(), 500);
    this.timer.unref();
  }

  end(): void {
    if (this.timer) clearInterval(this.timer);
    this.out.write('\r\x1b[K');
  }

  private draw(): void {
    const src = this.p.stages[0]!.counters;
    const events = sinkEvents(this.p.stages);
    const now = Date.now();
    const rate = ((events - this.lastEvents) * 1000) / Math.max(1, now - this.lastTime);
    this.lastEvents = events;
    this.lastTime = now;
    const total = src.extra.totalBytes;
    const pct = total ? ` · ${Math.min(100, (100 * (src.extra.bytesRead ?? 0)) / total).toFixed(1)}% read` : '';
    const secs = ((now - this.start) / 1000).toFixed(0);
    this.out.write(`\r\x1b[K${fmt(src.out)} records · ${fmt(events)} events · ${fmt(Math.round(rate))} events/s${pct} · ${secs}s`);
  }
}

export function sinkEvents(stages: StageInfo[]): number {
  const sink = stages.find((s) => s.kind === 'sink');
  return sink ? sink.counters.out : 0;
}

const fmt = (n: number) => n.toLocaleString('en-US');

export function statsTable(stages: StageInfo[], seconds: number): string {
  const rows = [['stage', 'in', 'out', 'dropped', 'malformed', 'other']];
  for (const s of stages) {
    const c = s.counters;
    const other = Object.entries(c.extra)
      .filter(([k]) => k !== 'totalBytes')
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    rows.push([s.label, fmt(c.in), fmt(c.out), fmt(c.dropped), fmt(c.malformed), other]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((cell, i) => (i === 0 || i === 5 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
  lines.push(`elapsed ${seconds.toFixed(2)}s`);
  return lines.join('\n') + '\n';
}
