import type { Context } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import { isIP, isIPv4, isIPv6 } from 'node:net';

/**
 * The client's address: the socket's, or the last `X-Forwarded-For` entry (the one the proxy itself appended)
 * when the proxy is trusted. An entry that is not an IP address (with or without a port) is not believed.
 */
export function clientAddress(c: Context, trustProxy: boolean): string {
  let socketAddress: string | undefined;
  try {
    socketAddress = getConnInfo(c).remote.address;
  } catch {
    // Requests made in-process (app.request) have no socket.
  }
  return addressFrom(trustProxy ? c.req.header('x-forwarded-for') : undefined, socketAddress);
}

/**
 * {@link clientAddress} from its parts: the `X-Forwarded-For` header when the proxy is trusted (undefined
 * otherwise), and the socket's address.
 * @example addressFrom(req.headers['x-forwarded-for'], req.socket.remoteAddress)
 */
export function addressFrom(forwardedFor: string | undefined, socketAddress: string | undefined): string {
  if (forwardedFor !== undefined) {
    const forwarded = plainIp(forwardedFor.split(',').at(-1)?.trim() ?? '');
    if (forwarded) return forwarded;
  }
  return socketAddress ?? 'unknown';
}

/** `entry` as a bare IP address (a port or brackets removed), or undefined when it is none. */
function plainIp(entry: string): string | undefined {
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(entry);
  const candidate = bracketed?.[1] ?? (/^[\d.]+:\d+$/.test(entry) ? entry.slice(0, entry.lastIndexOf(':')) : entry);
  return isIP(candidate) ? candidate : undefined;
}

/** The eight 16-bit groups of an IPv6 address (an embedded IPv4 tail counts as two). */
function ipv6Groups(address: string): number[] {
  const [head = '', tail] = address.split('%')[0]!.split('::');
  const parse = (part: string) =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [Number.parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
}

/**
 * The unit an address is counted by: an IPv4 address as it is (also when written IPv4-mapped), an IPv6
 * address by its /64, since one host commonly holds a whole /64 and could otherwise step through it.
 * @example addressGroup('2001:db8:1:2:aaaa::1') // '2001:db8:1:2::/64'
 */
export function addressGroup(address: string): string {
  if (isIPv4(address)) return address;
  if (!isIPv6(address)) return address;
  const groups = ipv6Groups(address);
  // ::ffff:a.b.c.d, in whatever spelling, is an IPv4 client.
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    const [hi = 0, lo = 0] = groups.slice(6);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}
