import { isHex } from './fields.js';

/** A decoded SOCKADDR `saddr` (Auditbeat's auditd.data.socket). */
export interface SocketAddress {
  /** `ipv4`, `ipv6`, `unix`, `netlink`, `unspec`, or the family number as text. */
  family: string;
  addr?: string;
  port?: number;
  /** unix sockets; abstract names start with `@` (as ss(8) prints them). */
  path?: string;
  /** netlink port id */
  pid?: number;
}

// struct sockaddr's sa_family is in host byte order; this reads it little-endian,
// the order of every architecture skafe runs on (x86_64, aarch64).
const AF_UNSPEC = 0;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;

/** Decode the hex `saddr` value; undefined when it is not hex or too short for its family. */
export function decodeSockaddr(hex: string): SocketAddress | undefined {
  if (!isHex(hex) || hex.length < 4) return undefined;
  const b = Buffer.from(hex, 'hex');
  const family = b[0]! | (b[1]! << 8);
  switch (family) {
    case AF_UNIX: {
      if (b.length <= 2) return { family: 'unix', path: '' };
      if (b[2] === 0) {
        // abstract socket: the name is every byte after the leading NUL
        if (b.length === 3) return { family: 'unix', path: '' };
        let end = b.length;
        while (end > 3 && b[end - 1] === 0) end--;
        return { family: 'unix', path: '@' + b.toString('utf8', 3, end) };
      }
      let end = b.indexOf(0, 2);
      if (end < 0) end = b.length;
      return { family: 'unix', path: b.toString('utf8', 2, end) };
    }
    case AF_INET:
      if (b.length < 8) return undefined;
      return { family: 'ipv4', addr: `${b[4]}.${b[5]}.${b[6]}.${b[7]}`, port: (b[2]! << 8) | b[3]! };
    case AF_INET6:
      if (b.length < 24) return undefined;
      return { family: 'ipv6', addr: ipv6ToText(b, 8), port: (b[2]! << 8) | b[3]! };
    case AF_NETLINK:
      if (b.length < 8) return { family: 'netlink' };
      return { family: 'netlink', pid: b.readUInt32LE(4) };
    case AF_UNSPEC:
      return { family: 'unspec' };
    default:
      return { family: String(family) };
  }
}

/**
 * The 16 address bytes at `off` as glibc's inet_ntop prints them (libauparse
 * uses it): lower-case, the longest run of two or more zero groups as `::`,
 * IPv4-mapped and IPv4-compatible addresses with a dotted quad.
 */
export function ipv6ToText(b: Uint8Array, off = 0): string {
  const w: number[] = new Array(8);
  for (let i = 0; i < 8; i++) w[i] = (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!;
  let bestBase = -1;
  let bestLen = 0;
  let curBase = -1;
  let curLen = 0;
  for (let i = 0; i < 8; i++) {
    if (w[i] === 0) {
      if (curBase < 0) {
        curBase = i;
        curLen = 1;
      } else curLen++;
    } else if (curBase >= 0) {
      if (curLen > bestLen) {
        bestBase = curBase;
        bestLen = curLen;
      }
      curBase = -1;
    }
  }
  if (curBase >= 0 && curLen > bestLen) {
    bestBase = curBase;
    bestLen = curLen;
  }
  if (bestLen < 2) bestBase = -1;
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase >= 0 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) out += ':';
      continue;
    }
    if (i !== 0) out += ':';
    // ::a.b.c.d (compatible) and ::ffff:a.b.c.d (mapped)
    if (i === 6 && bestBase === 0 && (bestLen === 6 || (bestLen === 5 && w[5] === 0xffff))) {
      out += `${b[off + 12]}.${b[off + 13]}.${b[off + 14]}.${b[off + 15]}`;
      return out;
    }
    out += w[i]!.toString(16);
  }
  if (bestBase >= 0 && bestBase + bestLen === 8) out += ':';
  return out;
}
