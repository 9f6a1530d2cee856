// Reconnect delays: exponential from `initialMs`, capped at `maxMs` (10 s by
// default, the original's fixed retry), with "equal jitter" (half fixed, half
// random) so a server restart is not met by every agent at the same instant.
export class Backoff {
  private attempt = 0;
  constructor(
    private readonly initialMs = 200,
    private readonly maxMs = 10_000,
    private readonly random: () => number = Math.random,
  ) {}

  next(): number {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
