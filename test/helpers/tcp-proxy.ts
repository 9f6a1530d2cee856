import net from 'node:net';

// A loopback TCP proxy whose link can be cut: `reset()` drops every connection
// at once (and refuses new ones for a while), `blackhole()` keeps connections
// open but silently stops forwarding, as a dead route does.

export class TcpProxy {
  private server: net.Server | null = null;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private silent = false;
  port = 0;

  constructor(private readonly target: number) {}

  async start(port = 0): Promise<number> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target, '127.0.0.1');
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      const forward = (from: net.Socket, to: net.Socket) =>
        from.on('data', (d) => {
          if (!this.silent) to.write(d);
        });
      forward(client, upstream);
      forward(upstream, client);
      const close = () => {
        this.pairs.delete(pair);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', close).on('error', close);
      upstream.on('close', close).on('error', close);
    });
    await new Promise<void>((r) => this.server!.listen(port, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
    return this.port;
  }

  /** Drop every connection and refuse new ones for `downMs`. */
  async reset(downMs: number): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const [a, b] of this.pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    this.pairs.clear();
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
    await new Promise((r) => setTimeout(r, downMs));
    await this.start(this.port);
  }

  /** Stop forwarding for `ms` without closing anything, then drop those connections. */
  async blackhole(ms: number): Promise<void> {
    this.silent = true;
    await new Promise((r) => setTimeout(r, ms));
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
    this.silent = false;
  }

  async stop(): Promise<void> {
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
