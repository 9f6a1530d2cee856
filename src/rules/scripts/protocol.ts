// What skafe and a script interpreter (a Ruby or Python process speaking JSON
// lines through a shim, or a JavaScript worker thread) say to each other. An
// interpreter runs one call at a time, so results come back in call order.

export type ToInterp =
  | { t: 'call'; id: number; event: unknown }
  // To the JavaScript worker only: the event as JSON text, parsed there.
  | { t: 'call'; id: number; json: string }
  | { t: 'fetched'; rid: number; ok: true; data: string; sha256: string; size: number }
  | { t: 'fetched'; rid: number; ok: false; error: string };

export type FromInterp =
  | { t: 'ready' }
  | { t: 'fatal'; error: string }
  | { t: 'result'; id: number; ok: true; value: boolean }
  | { t: 'result'; id: number; ok: false; error: string }
  | { t: 'log'; msg: string }
  | { t: 'fetch'; rid: number; path: string };

/**
 * The `skafe.fetchFile(path)` builtin's way out: the agent link registers this
 * function as `ctx.services.get('fetchFile')`. It asks the agent that sent
 * `event` for the file over its existing link; the agent enforces its own
 * allow-list (by default only the event's executable) and size cap.
 */
export type FetchFile = (req: { path: string; event: unknown }) => Promise<{ bytes: Uint8Array; sha256: string }>;

export const FETCH_NOT_CONNECTED =
  'fetchFile: not connected: no agent link in this pipeline (no "fetchFile" service registered), so files cannot be fetched';
