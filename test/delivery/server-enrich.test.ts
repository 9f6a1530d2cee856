import t from 'tap';
import dgram from 'node:dgram';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { makeContext } from '../../src/pipeline.js';
import { StageCounters, markEncoded, isEncoded } from '../../src/stage.js';
import serverEnrich from '../../src/transforms/server-enrich.js';
import { setRelease, getRelease } from '../../src/link/services.js';
import { memoryLogger } from '../helpers/delivery.js';

// Reverse DNS against a real (tiny, loopback) DNS server speaking the wire
// protocol: names are added, cached, time-boxed; a silent resolver costs at
// most the timeout and 'auto' turns lookups off when nothing answers.

/** Answers PTR queries from `names` (in-addr.arpa name → host); counts queries; `silent` ignores them. */
async function dnsServer(names: Record<string, string>, silent = false): Promise<{ addr: string; queries: () => number; close(): void }> {
  const sock = dgram.createSocket('udp4');
  let queries = 0;
  sock.on('message', (msg, rinfo) => {
    queries++;
    if (silent) return;
    const labels: string[] = [];
    let i = 12;
    while (msg[i]) {
      labels.push(msg.subarray(i + 1, i + 1 + msg[i]!).toString());
      i += msg[i]! + 1;
    }
    const qname = labels.join('.');
    const qEnd = i + 5;
    const host = names[qname];
    const head = Buffer.from(msg.subarray(0, 12));
    head.writeUInt16BE(host ? 0x8180 : 0x8183, 2); // response, RD+RA, NOERROR or NXDOMAIN
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(host ? 1 : 0, 6);
    head.writeUInt32BE(0, 8);
    const parts = [head, msg.subarray(12, qEnd)];
    if (host) {
      const rdata = Buffer.concat([...host.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
      const rr = Buffer.alloc(12);
      rr.writeUInt16BE(0xc00c, 0);
      rr.writeUInt16BE(12, 2); // PTR
      rr.writeUInt16BE(1, 4);
      rr.writeUInt32BE(60, 6);
      rr.writeUInt16BE(rdata.length, 10);
      parts.push(rr, rdata);
    }
    sock.send(Buffer.concat(parts), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  return { addr: `127.0.0.1:${sock.address().port}`, queries: () => queries, close: () => sock.close() };
}

async function run(options: Record<string, unknown>, batches: unknown[][], encodedOutput = false): Promise<{ out: unknown[][]; counters: StageCounters; log: ReturnType<typeof memoryLogger> }> {
  const counters = new StageCounters();
  const log = memoryLogger();
  const ctx = makeContext('stage 3 (server-enrich)', 2, counters, { baseDir: '.', log, services: new Map(), signal: new AbortController().signal });
  ctx.encodedOutput = encodedOutput;
  const stage = await serverEnrich.create(options as never, ctx);
  const out: unknown[][] = [];
  await pipeline(Readable.from(batches, { objectMode: true }), stage as never, new Writable({ objectMode: true, write: (b, _e, cb) => (out.push(b), cb()) }));
  return { out, counters, log };
}

t.test('names added for source/destination IPs, one query per address, cached', async (t) => {
  const dns = await dnsServer({ '1.2.0.192.in-addr.arpa': 'gateway.example', '7.2.0.192.in-addr.arpa': 'web.example' });
  t.teardown(() => dns.close());
  const ev = () => ({ event: { id: 'x' }, source: { ip: '192.0.2.1' }, destination: { ip: '192.0.2.7' }, client: { ip: '198.51.100.1' } });
  const first = [ev(), ev(), ev()];
  setRelease(first, 42);
  const { out, counters } = await run({ reverse_dns: 'on', dns_servers: [dns.addr] }, [first, [ev()]]);
  const e = out[0]![0] as Record<string, any>;
  t.equal(e.source.domain, 'gateway.example');
  t.equal(e.destination.domain, 'web.example');
  t.equal(e.client.domain, undefined, 'no name for an address without one');
  t.equal(getRelease(out[0]!), 42, 'the queue release mark is kept');
  t.equal(dns.queries(), 3, 'one query per distinct address, however many events');
  t.equal(counters.extra.dnsCacheHits, 3, 'the second batch came from the cache');
});

t.test('a silent resolver costs at most the timeout; auto turns lookups off', async (t) => {
  const dns = await dnsServer({}, true);
  t.teardown(() => dns.close());
  const started = Date.now();
  const { out, counters } = await run({ reverse_dns: 'on', dns_servers: [dns.addr], dns_timeout: 200 }, [[{ source: { ip: '203.0.113.5' } }]]);
  t.ok(Date.now() - started < 2000, 'bounded by the timeout');
  t.equal((out[0]![0] as any).source.domain, undefined);
  t.equal(counters.extra.dnsFailures, 1, 'counted');
  const auto = await run({ reverse_dns: 'auto', dns_servers: [dns.addr], dns_timeout: 200 }, [[{ source: { ip: '203.0.113.5' } }]]);
  t.match(auto.log.lines.join('\n'), /reverse DNS off: no resolver answered/);
  t.equal(auto.counters.extra.dnsLookups ?? 0, 0, 'no lookups once off');
});

t.test('encoded batches pass through untouched when there is nothing to look up', async (t) => {
  const b = markEncoded(['{"event":{"id":"a"}}']);
  setRelease(b, 7);
  const { out } = await run({ reverse_dns: 'off' }, [b], true);
  t.equal(out[0], b, 'the same batch object');
});

t.test('encoded batches with lookups on stay text: only lines naming an IP are parsed and written again', async (t) => {
  const dns = await dnsServer({ '1.2.0.192.in-addr.arpa': 'gateway.example' });
  t.teardown(() => dns.close());
  const plain = '{"event":{"id":"a"},"process":{"args":["ping"]}, "odd" : 1}';
  const named = '{"event":{"id":"b"},"source":{"ip":"192.0.2.1","port":22}}';
  const nameless = '{"event":{"id":"c"},"destination":{"ip":"198.51.100.9"}}';
  const given = '{"event":{"id":"d"},"source":{"ip":"192.0.2.1","domain":"own.example"}}';
  const broken = '{"event":{"id":"e"},"source":{"ip":"192.0.2.1"';
  const b = markEncoded([plain, named, nameless, given, broken]);
  setRelease(b, 9);
  const { out, counters } = await run({ reverse_dns: 'on', dns_servers: [dns.addr] }, [b], true);
  const got = out[0]! as string[];
  t.ok(isEncoded(got), 'text out');
  t.equal(getRelease(got), 9, 'the queue release mark is kept');
  t.equal(got[0], plain, 'a line without an IP goes on as it came, byte for byte');
  t.same(JSON.parse(got[1]!), { event: { id: 'b' }, source: { ip: '192.0.2.1', port: 22, domain: 'gateway.example' } }, 'a name added');
  t.same(JSON.parse(got[2]!), JSON.parse(nameless), 'no name for an address without one');
  t.equal(JSON.parse(got[3]!).source.domain, 'own.example', "the event's own domain is kept");
  t.same(JSON.parse(got[4]!).event, { original: broken }, 'a line that is not JSON goes on as a malformed event');
  t.equal(counters.malformed, 1, 'and is counted');
  t.equal(dns.queries(), 2, 'one query per distinct address');
});
