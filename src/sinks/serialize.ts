import { isEncoded, encodedBytes, type Batch } from '../stage.js';

/** One JSON document per line for a whole batch: one string (or the worker's bytes), so one write() call. */
export function toJsonLines(batch: Batch<unknown>): string | Uint8Array {
  const bytes = encodedBytes(batch);
  if (bytes) return bytes;
  if (isEncoded(batch)) return batch.join('\n') + '\n';
  let s = '';
  for (let i = 0; i < batch.length; i++) s += JSON.stringify(batch[i]) + '\n';
  return s;
}

/** Called by sinks once a batch is written (and synced, if asked): the server queue's end-to-end ack. */
export type DeliveredHook = (batch: Batch<unknown>, sink: string) => void;
export const DELIVERED = 'delivered';
