import { Transform } from 'node:stream';
import dns from 'node:dns';
import net from 'node:net';
import { defineStage, BATCH_HWM, isEncoded, markEncoded, type StageContext } from '../stage.js';
import { carryRelease } from '../link/services.js';
import { parseEventLine } from '../link/event-lines.js';

// Server side: agent.name/agent.id are set by the queue from the link identity
// (certificate CN, spool id), which this stage keeps; here we add reverse-DNS
// names for the event's IPs: source.ip → source.domain, destination.ip →
// destination.domain, client/server likewise. Lookups are cached (bounded LRU,
// negative answers too) and time-boxed; 'auto' (the default) turns them off
// when no resolver answers at start.

export interface ServerEnrichOptions {
  reverse_dns?: 'auto' | 'on' | 'off';
  /** Per-lookup timeout in ms. Default 300. */
  dns_timeout?: number;
  /** Cached names (and failures). Default 10,000; oldest evicted at the cap. */
  dns_cache?: number;
  /** Cache lifetime in seconds. Default 600. */
  dns_ttl?: number;
  /** Resolvers to ask ("ip" or "ip:port"); default: the system's (/etc/resolv.conf). */
  dns_servers?: string[];
}

const FIELDS = ['source', 'destination', 'client', 'server'] as const;

class ReverseDns {
  private readonly cache = new Map<string, { name: string | null; until: number }>();
  private readonly resolver: dns.promises.Resolver;
  constructor(
    private readonly timeoutMs: number,
    private readonly cap: number,
    private readonly ttlMs: number,
    private readonly ctx: StageContext,
    servers?: string[],
  ) {
    this.resolver = new dns.promises.Resolver({ timeout: timeoutMs, tries: 1 });
    if (servers?.length) this.resolver.setServers(servers);
  }

  /** Lookups answered from the cache (for tests and stats). */
  hits = 0;

  async probe(): Promise<boolean> {
    try {
      // A documentation address (RFC 5737): no hosts file names it, so only a resolver can answer.
      await this.withTimeout(this.resolver.reverse('192.0.2.1'));
      return true;
    } catch (e) {
      // NXDOMAIN / NOTFOUND is an answer: a resolver is there.
      const code = (e as NodeJS.ErrnoException).code;
      return code === 'ENOTFOUND' || code === 'NOTFOUND';
    }
  }

  async name(ip: string): Promise<string | null> {
    const now = Date.now();
    const hit = this.cache.get(ip);
    if (hit && hit.until > now) {
      this.hits++;
      this.ctx.counters.add('dnsCacheHits');
      return hit.name;
    }
    // One query per address however many events ask at once (bounded by the cache cap).
    const pending = this.inflight.get(ip);
    if (pending) return pending;
    const p = this.lookup(ip, now);
    this.inflight.set(ip, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(ip);
    }
  }

  private readonly inflight = new Map<string, Promise<string | null>>();

  private async lookup(ip: string, now: number): Promise<string | null> {
    this.ctx.counters.add('dnsLookups');
    let name: string | null = null;
    try {
      name = (await this.withTimeout(this.resolver.reverse(ip)))[0] ?? null;
    } catch {
      this.ctx.counters.add('dnsFailures');
    }
    this.cache.delete(ip);
    if (this.cache.size >= this.cap) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(ip, { name, until: now + this.ttlMs });
    return name;
  }

  private withTimeout<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(Object.assign(new Error('timeout'), { code: 'ETIMEOUT' })), this.timeoutMs).unref())]);
  }
}

export default defineStage<ServerEnrichOptions>({
  kind: 'transform',
  use: 'server-enrich',
  description: 'server-side enrichment: reverse-DNS names for source/destination/client/server IPs (cached, time-boxed)',
  // Encoded batches (event JSON text from the queue) stay text when the next stage
  // takes text: untouched with lookups off, else only the lines naming an IP are
  // parsed and written again.
  acceptsEncoded: true,
  schema: {
    type: 'object',
    properties: {
      reverse_dns: { enum: ['auto', 'on', 'off'] },
      dns_timeout: { type: 'integer', minimum: 1 },
      dns_cache: { type: 'integer', minimum: 1 },
      dns_ttl: { type: 'number', minimum: 0 },
      dns_servers: { type: 'array', items: { type: 'string' } },
    },
    additionalProperties: false,
  },
  async create(options, ctx) {
    const mode = options.reverse_dns ?? 'auto';
    let rdns: ReverseDns | null = null;
    if (mode !== 'off') {
      rdns = new ReverseDns(options.dns_timeout ?? 300, options.dns_cache ?? 10_000, (options.dns_ttl ?? 600) * 1000, ctx, options.dns_servers);
      if (mode === 'auto' && !(await rdns.probe())) {
        ctx.log.info('reverse DNS off: no resolver answered (set reverse_dns: "on" to force)');
        rdns = null;
      }
    }
    /** The event's reverse lookups still to do, each filling in its field's domain. */
    const lookup = (ev: Record<string, unknown>): Array<Promise<void>> => {
      const work: Array<Promise<void>> = [];
      if (!rdns) return work;
      for (const f of FIELDS) {
        const o = ev[f] as { ip?: unknown; domain?: unknown } | undefined;
        if (o && typeof o.ip === 'string' && o.domain === undefined && net.isIP(o.ip)) {
          work.push(rdns.name(o.ip).then((n) => void (n && (o.domain = n))));
        }
      }
      return work;
    };
    return new Transform({
      objectMode: true,
      highWaterMark: BATCH_HWM,
      transform(input: unknown[], _e, cb) {
        ctx.counters.in += input.length;
        const report = (why: string) => ctx.problem({ code: 'SKAFE_MALFORMED_EVENT', message: `an event line is not a JSON object (${why}); kept as event.original` });
        if (isEncoded(input) && ctx.encodedOutput) {
          if (!rdns) {
            ctx.counters.out += input.length;
            return cb(null, input);
          }
          // Text in and out: only lines that name an IP are parsed, looked up and written again;
          // the rest go on as they came (parsing every event cost the server's path 2.5× the CPU).
          const out = (input as string[]).slice();
          const work: Promise<void>[] = [];
          for (let i = 0; i < out.length; i++) {
            if (!out[i]!.includes('"ip"')) continue;
            const { event: ev, malformed } = parseEventLine(out[i]!, report);
            if (malformed) {
              out[i] = JSON.stringify(ev);
              continue;
            }
            const lookups = lookup(ev);
            if (lookups.length) work.push(Promise.all(lookups).then(() => void (out[i] = JSON.stringify(ev))));
          }
          const done = () => {
            ctx.counters.out += out.length;
            cb(null, carryRelease(input, markEncoded(out)));
          };
          if (work.length === 0) return done();
          return void Promise.all(work).then(done, cb);
        }
        // The queue hands on only JSON objects (event-lines.ts); a line from elsewhere that is not one goes on as a malformed event.
        const batch = (isEncoded(input) ? carryRelease(input, (input as string[]).map((l) => parseEventLine(l, report).event)) : input) as Array<Record<string, unknown>>;
        const work: Promise<void>[] = [];
        for (const ev of batch) work.push(...lookup(ev));
        const done = () => {
          ctx.counters.out += batch.length;
          cb(null, batch);
        };
        if (work.length === 0) done();
        else Promise.all(work).then(done, cb);
      },
    });
  },
});
