// The names and shapes of the side channels (StageContext.services) the
// delivery stages use to talk across the stream pipeline.

/** Registered by `spool` (agent): the link reports what the server made durable. */
export interface SpoolService {
  /** The spool identity, random, stored in the spool: part of the server's dedup key. */
  readonly id: string;
  /** Everything up to and including `offset` is durable on the server. */
  ack(offset: number): void;
  /** Offset of the next event to be written. */
  nextOffset(): number;
  /**
   * True when an event this agent spooled recently had this process.executable:
   * the link serves such a file to the server's skafe.fetchFile by default.
   */
  reportedExecutable(path: string): boolean;
}
export const SPOOL_SERVICE = 'spool';

/** One spooled batch as it travels spool → link: offsets first..first+count-1. */
export interface SpooledBatch {
  first: number;
  count: number;
  /** The packed events (link/codec.ts: brotli of JSON lines). */
  data: Buffer;
}

/** What the server's listener hands the queue: one agent batch. */
export interface Delivery {
  /** Certificate CN (or the HELLO name on a plaintext link). */
  agent: string;
  /** Spool identity; '' for server-made status events, which are not deduplicated. */
  spool: string;
  first: number;
  count: number;
  data?: Buffer;
  events?: object[];
  /** The connection that sent it, to acknowledge once durable. */
  conn?: { durable(lastOffset: number, bytes: number): void };
}

/** Registered by `queue` (server). */
export interface QueueService {
  /** Highest offset durably queued for (agent, spool), -1 when none. */
  highWater(agent: string, spool: string): number;
}
export const QUEUE_SERVICE = 'queue';

/** Where a sink last wrote, so the queue can cut off what it wrote after the last release. */
export interface SinkPosition {
  path: string;
  dev: number;
  ino: number;
  size: number;
}

/**
 * The queue's side of the sinks' DELIVERED hook (src/sinks/serialize.ts): a sink
 * calls it once a batch's write completed. A batch carries the queue position it
 * came from as a non-enumerable `release` property (set by the queue); stages
 * between queue and sink must keep it on the arrays they pass on (see
 * carryRelease). Object events are also recognised by identity, so a stage that
 * copies the array but keeps the event objects is fine too.
 */
export interface AcksService {
  flushed(batch: unknown[]): void;
}

export function setRelease(batch: unknown[], seq: number): void {
  Object.defineProperty(batch, 'release', { value: seq, enumerable: false, configurable: true });
}
export function getRelease(batch: unknown[]): number | undefined {
  return (batch as { release?: number }).release;
}
export function carryRelease(from: unknown[], to: unknown[]): unknown[] {
  const r = getRelease(from);
  if (r !== undefined) setRelease(to, r);
  return to;
}
