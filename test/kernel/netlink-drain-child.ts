// A child process for the drain test: a netlink source nobody reads from, so
// backpressure pauses it and the kernel's records pile up in its socket's
// receive buffer. Prints "ready <data socket portid>"; on "stop" on stdin it
// asks the source to stop, then reads everything the source still gives and
// prints the counts as JSON: SYSCALL records of process `pid` (argv[3]) with
// the rule key, loss records, and the source's counters. With argv[3]
// `destroy` it destroys the source instead and prints the counters once it
// has closed.
import { StageCounters, type StageContext } from '../../src/stage.js';
import netlinkStage, { LOSS_RECORD_TYPE, type NetlinkSource } from '../../src/sources/netlink.js';
import type { AuditRecord } from '../../src/audit/record.js';

const [rules, how] = process.argv.slice(2);
const abort = new AbortController();
const warnings: string[] = [];
const ctx: StageContext = {
  baseDir: process.cwd(),
  index: 0,
  name: 'netlink',
  counters: new StageCounters(),
  log: { info() {}, warn: (m: string) => void warnings.push(m), error: (m: string) => void warnings.push(m) },
  signal: abort.signal,
  problem() {},
  services: new Map(),
};
const src = (await netlinkStage.create({ mode: 'unicast', rules, receiveBuffer: 64 * 1024 * 1024, backlogLimit: 8192, statusIntervalMs: 200 }, ctx)) as NetlinkSource;
const portid = (src as unknown as { session: { data: { portid: number } } }).session.data.portid;
process.stdout.write(`ready ${portid}\n`);
process.stdin.once('data', async (d) => {
  const pid = d.toString().trim().split(' ')[1];
  if (how === 'destroy') {
    src.destroy();
    src.once('close', () => {
      process.stdout.write(JSON.stringify({ extra: ctx.counters.extra, warnings }) + '\n');
      process.stdin.destroy();
    });
    return;
  }
  abort.abort();
  let syscalls = 0;
  let losses = 0;
  let records = 0;
  for await (const batch of src as AsyncIterable<AuditRecord[]>) {
    for (const r of batch) {
      records++;
      if (r.type === LOSS_RECORD_TYPE) losses++;
      else if (r.type === 'SYSCALL' && r.body.includes(` pid=${pid} `) && r.body.includes('key="skafe-drain"')) syscalls++;
    }
  }
  process.stdout.write(JSON.stringify({ syscalls, losses, records, extra: ctx.counters.extra, warnings }) + '\n');
  process.stdin.destroy(); // nothing else keeps the process alive: it exits
});
