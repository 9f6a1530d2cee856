import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SkafeError } from '../errors.js';

/** The native NETLINK_AUDIT socket (native/netlink/src/audit_socket.cc). */
export interface NativeAuditSocket {
  readonly portid: number;
  readonly fd: number;
  /** Sends one netlink message to the kernel; the kernel handles it inside the call. Throws errno errors. */
  send(type: number, flags: number, seq: number, payload?: Buffer): void;
  /** Starts polling; `flat` is [type, seq, payload, …], payload a string for records (type ≥ 1100), else a Buffer. */
  start(onMessages?: (flat: Array<number | string | Buffer>, enobufs: number, err?: NodeJS.ErrnoException) => void): void;
  stop(): void;
  /** Reads everything the socket holds now, until it is empty: [flat, enobufs] as start()'s callback gets them. */
  drain(): [Array<number | string | Buffer>, number];
  close(): void;
}

interface NativeModule {
  AuditSocket: new (groups: number, slots: number, rcvbuf: number) => NativeAuditSocket;
}

let loaded: NativeModule | undefined;

/** Loads the addon built by `npm install` (node-gyp, native/netlink/build). */
export function nativeAudit(): NativeModule {
  if (loaded) return loaded;
  // dist/src/kernel/addon.js or src/kernel/addon.ts → repository root
  const here = path.dirname(fileURLToPath(import.meta.url));
  const candidates = [path.resolve(here, '../../../native/netlink/build/Release/skafe_netlink.node'), path.resolve(here, '../../native/netlink/build/Release/skafe_netlink.node')];
  const require = createRequire(import.meta.url);
  let lastError: unknown;
  for (const c of candidates) {
    try {
      loaded = require(c) as NativeModule;
      return loaded;
    } catch (e) {
      lastError = e;
    }
  }
  throw new SkafeError('SKAFE_NETLINK', `the netlink addon is not built (run: npm install, or node-gyp rebuild -C native/netlink): ${(lastError as Error)?.message ?? ''}`, { cause: lastError });
}
