import { isEncoded, encodedBytes, type Batch } from '../stage.js';
import type { SinkPosition } from '../link/services.js';

/** One JSON document per line for a whole batch: one string (or the worker's bytes), so one write() call. */
export function toJsonLines(batch: Batch<unknown>): string | Uint8Array {
  const bytes = encodedBytes(batch);
  if (bytes) return bytes;
  // an empty batch (a release mark with nothing of this log's in it) writes nothing, not a blank line
  if (isEncoded(batch)) return batch.length ? batch.join('\n') + '\n' : '';
  let s = '';
  for (let i = 0; i < batch.length; i++) s += JSON.stringify(batch[i]) + '\n';
  return s;
}

/**
 * Called by sinks once a batch is written (and synced, if asked): the server
 * queue's end-to-end ack. A sink that appends to a file says where the file
 * ends now (`position`, line-aligned: right after this batch); `written` is
 * the queue position of the batch this sink wrote when the batch reaching the
 * hook is not that one (a fan-out reports each branch's progress apart from
 * the release of all of them).
 */
export type DeliveredHook = (batch: Batch<unknown>, sink: string, position?: SinkPosition, written?: number) => void;
export const DELIVERED = 'delivered';
