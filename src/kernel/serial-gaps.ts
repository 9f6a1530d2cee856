/**
 * Counts audit serial numbers that never arrived. Records of one event share a
 * serial, events can arrive slightly out of order (several CPUs), and every
 * logged event takes the next serial, so a serial skipped for longer than a
 * reorder window was lost. Bounded: at most MAX_MISSING pending serials; past
 * that the oldest are declared lost at once.
 */
const REORDER_WINDOW = 4096;
const MAX_MISSING = 65536;

export class SerialGapTracker {
  private max = -1;
  private readonly missing = new Set<number>();
  private lost = 0;

  see(serial: number): void {
    if (this.max < 0) {
      this.max = serial;
      return;
    }
    if (serial > this.max) {
      // A jump bigger than the cap (restart, or a flood of loss) counts the excess at once.
      let from = this.max + 1;
      if (serial - from > MAX_MISSING) {
        this.lost += serial - from - MAX_MISSING;
        from = serial - MAX_MISSING;
      }
      for (let s = from; s < serial; s++) this.missing.add(s);
      this.max = serial;
      this.evict();
    } else if (serial < this.max) {
      this.missing.delete(serial);
    }
  }

  private evict(): void {
    const limit = this.max - REORDER_WINDOW;
    for (const s of this.missing) {
      if (s >= limit && this.missing.size <= MAX_MISSING) break;
      this.missing.delete(s);
      this.lost++;
    }
  }

  /** Serials declared lost since the last call. */
  takeMissing(): number {
    this.evict();
    const n = this.lost;
    this.lost = 0;
    return n;
  }
}
