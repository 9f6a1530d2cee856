import fs from 'node:fs/promises';
import { LineSplitter } from '../../sources/line-splitter.js';
import { valuesAt } from '../../event-path.js';
import { parseArgs } from '../args.js';

export const summary = 'print a JSON-lines sink as it grows (skafe tail FILE [-f] [--where f=re] [--fields a,b])';

const usage = `usage: skafe tail FILE [-f] [-n N] [--where FIELD=REGEX]... [--fields a,b,c] [--json|--pretty]
  -f, --follow        keep printing as the file grows, across rotation (like tail -F)
  -n, --lines N       start with only the last N matching events of what is there now
  --where FIELD=RE    only events where some value at dotted FIELD matches RE (repeat: all must match)
  --fields a,b,c      only these dotted fields
  --json / --pretty   force raw JSON lines / coloured output (default: coloured on a terminal)
`;

interface Filter {
  field: string;
  re: RegExp;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    bools: ['follow', 'json', 'pretty', 'help'],
    values: ['where', 'fields', 'poll', 'lines'],
    aliases: { f: 'follow', F: 'follow', h: 'help', n: 'lines' },
  });
  if (args.flags.has('help') || args.positional.length !== 1) {
    process.stderr.write(usage);
    return args.flags.has('help') ? 0 : 2;
  }
  const file = args.positional[0]!;
  const filters: Filter[] = [];
  for (const w of args.multi.get('where') ?? []) {
    const eq = w.indexOf('=');
    if (eq <= 0) {
      process.stderr.write(`skafe tail: --where wants FIELD=REGEX, got "${w}"\n`);
      return 2;
    }
    try {
      filters.push({ field: w.slice(0, eq), re: new RegExp(w.slice(eq + 1)) });
    } catch (err) {
      process.stderr.write(`skafe tail: --where ${w}: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const fieldsArg = args.flags.get('fields');
  const fields = typeof fieldsArg === 'string' ? fieldsArg.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const pretty = args.flags.has('pretty') || (!args.flags.has('json') && !!process.stdout.isTTY);
  const follow = args.flags.has('follow');
  const pollMs = Number(args.flags.get('poll') ?? 250);
  const lastN = args.flags.has('lines') ? Number(args.flags.get('lines')) : undefined;
  if (lastN !== undefined && !(Number.isInteger(lastN) && lastN >= 0)) {
    process.stderr.write(`skafe tail: -n wants a whole number, got "${args.flags.get('lines')}"\n`);
    return 2;
  }
  // With -n, what is there at the start goes through a ring of the last N; then straight out.
  let ring: string[] | undefined = lastN !== undefined ? [] : undefined;
  const emit = (text: string) => {
    if (ring === undefined) return out(text);
    ring.push(text);
    if (ring.length > lastN!) ring.shift();
  };
  const endOfBacklog = () => {
    if (ring === undefined) return;
    const r = ring;
    ring = undefined;
    for (const x of r) out(x);
  };

  let bad = 0;
  const onLine = (line: string, lineNo: number) => {
    if (!line) return;
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      if (bad++ === 0) process.stderr.write(`skafe tail: ${file}:${lineNo}: not a JSON line; skipped (further ones are counted)\n`);
      return;
    }
    if (!filters.every((f) => valuesAt(ev, f.field).some((v) => f.re.test(v)))) return;
    emit(pretty ? render(ev, fields) : JSON.stringify(fields ? pick(ev, fields) : ev) + '\n');
  };

  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0); // `skafe tail … | head` is fine
  });

  try {
    await readFollowing(file, follow, pollMs, onLine, () => stopped, endOfBacklog);
    endOfBacklog();
  } catch (err) {
    process.stderr.write(`skafe tail: ${(err as Error).message}\n`);
    return 1;
  }
  if (bad > 1) process.stderr.write(`skafe tail: ${bad} lines were not JSON\n`);
  return 0;
}

let pendingOut = '';
function out(s: string): void {
  pendingOut += s;
  if (pendingOut.length > 65536) flushOut();
  else if (pendingOut.length === s.length) setImmediate(flushOut);
}
function flushOut(): void {
  if (pendingOut) process.stdout.write(pendingOut);
  pendingOut = '';
}

/** Read FILE line by line; with follow, keep going across growth, rotation and truncation. */
async function readFollowing(
  file: string,
  follow: boolean,
  pollMs: number,
  onLine: (line: string, n: number) => void,
  stopped: () => boolean,
  atFirstEnd: () => void = () => {},
): Promise<void> {
  const buf = Buffer.allocUnsafe(1 << 18);
  const splitter = new LineSplitter(1 << 24, {
    line: onLine,
    tooLong: (n) => process.stderr.write(`skafe tail: ${file}:${n}: line too long; skipped\n`),
  });
  let fh = await fs.open(file, 'r');
  let st = await fh.stat();
  let offset = 0;
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
    if (bytesRead > 0) {
      offset += bytesRead;
      splitter.push(buf.subarray(0, bytesRead));
      await drained();
      continue;
    }
    if (!follow || stopped()) break;
    atFirstEnd();
    flushOut();
    await new Promise((r) => setTimeout(r, pollMs));
    if (stopped()) break;
    const now = await fs.stat(file).catch(() => undefined);
    if (!now) continue;
    if (now.ino !== st.ino || now.dev !== st.dev) {
      const size = (await fh.stat()).size;
      if (size > offset) continue; // finish the old file first
      splitter.end();
      await fh.close();
      fh = await fs.open(file, 'r');
      st = await fh.stat();
      offset = 0;
      splitter.reset();
    } else if (now.size < offset) {
      offset = 0;
      splitter.reset();
    }
  }
  splitter.end();
  flushOut();
  await fh.close();
}

function drained(): Promise<void> {
  if (pendingOut.length > 0) flushOut();
  if (!process.stdout.writableNeedDrain) return Promise.resolve();
  return new Promise((r) => process.stdout.once('drain', () => r()));
}

function pick(ev: unknown, fields: string[]): Record<string, unknown> {
  const o: Record<string, unknown> = {};
  for (const f of fields) {
    const v = valuesAt(ev, f);
    if (v.length) o[f] = v.length === 1 ? v[0] : v;
  }
  return o;
}

const C = { dim: '\x1b[2m', key: '\x1b[36m', str: '\x1b[32m', num: '\x1b[33m', bold: '\x1b[1m', red: '\x1b[31m', off: '\x1b[0m' };

function render(ev: unknown, fields?: string[]): string {
  if (fields) {
    return (
      fields
        .map((f) => {
          const v = valuesAt(ev, f);
          return `${C.key}${f}${C.off}=${C.str}${v.length ? v.join(',') : '-'}${C.off}`;
        })
        .join(' ') + '\n'
    );
  }
  const e = ev as Record<string, any>;
  const head = `${C.dim}${e['@timestamp'] ?? ''}${C.off} ${C.bold}${e.event?.id ?? ''}${C.off}${
    e.event?.outcome === 'failure' ? ` ${C.red}failure${C.off}` : ''
  }`;
  return head + '\n' + colorJson(ev, 1) + '\n';
}

function colorJson(v: unknown, depth: number): string {
  const pad = '  '.repeat(depth);
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'string') return C.str + JSON.stringify(v) + C.off;
    return C.num + JSON.stringify(v) + C.off;
  }
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) return '[' + v.map((x) => colorJson(x, depth)).join(', ') + ']';
    return '[\n' + v.map((x) => pad + '  ' + colorJson(x, depth + 1)).join(',\n') + '\n' + pad + ']';
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (!entries.length) return '{}';
  return (
    '{\n' +
    entries.map(([k, x]) => `${pad}  ${C.key}${JSON.stringify(k)}${C.off}: ${colorJson(x, depth + 1)}`).join(',\n') +
    '\n' +
    pad +
    '}'
  );
}
