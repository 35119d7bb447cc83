import type { Context, MiddlewareHandler } from 'hono';
import { isIPv6 } from 'node:net';
import { getConnInfo } from '@hono/node-server/conninfo';
import { HTTPException } from 'hono/http-exception';

/** Options of {@link rateLimit}. */
export interface RateLimitOptions {
  /** Requests allowed per client address per window. */
  max: number;
  windowMs?: number;
  /** Take the client address from `X-Forwarded-For` (only behind a proxy the operator runs). */
  trustProxy?: boolean;
  /** Addresses tracked at once; past it the window starts over early rather than grow without bound. */
  maxClients?: number;
}

/** The client's address: the socket's, or the last `X-Forwarded-For` entry (the proxy's own) when the proxy is trusted. */
export function clientAddress(c: Context, trustProxy: boolean): string {
  if (trustProxy) {
    // The proxy appends the address it saw; entries left of it are whatever the client claimed.
    const forwarded = c.req.header('x-forwarded-for')?.split(',').at(-1)?.trim();
    if (forwarded) return forwarded;
  }
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    // Requests made in-process (app.request) have no socket.
    return 'unknown';
  }
}

/**
 * The unit an address is counted by: an IPv4 address as it is (also when written IPv4-mapped), an IPv6
 * address by its /64, since one host commonly holds a whole /64 and could otherwise step through it.
 * @example addressGroup('2001:db8:1:2:aaaa::1') // '2001:db8:1:2::/64'
 */
export function addressGroup(address: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('%')[0]!.split('::') as [string, string?];
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  const prefix = groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(':')}::/64`;
}

/**
 * A fixed-window rate limit per client address, kept in memory; over the limit → 429 with `Retry-After`.
 * @example app.post('/collect', rateLimit({ max: 600 }), handler)
 */
export function rateLimit(options: RateLimitOptions): MiddlewareHandler {
  const windowMs = options.windowMs ?? 60_000;
  const maxClients = options.maxClients ?? 100_000;
  const trustProxy = options.trustProxy ?? false;
  let counts = new Map<string, number>();
  let windowStart = Date.now();
  return async function rateLimitMiddleware(c, next) {
    const now = Date.now();
    if (now - windowStart >= windowMs || counts.size >= maxClients) {
      counts = new Map();
      windowStart = now;
    }
    const address = clientAddress(c, trustProxy);
    const used = (counts.get(address) ?? 0) + 1;
    counts.set(address, used);
    if (used > options.max) {
      const retryAfter = Math.max(1, Math.ceil((windowStart + windowMs - now) / 1000));
      c.header('Retry-After', String(retryAfter));
      throw new HTTPException(429, { message: 'too many requests' });
    }
    await next();
  };
}
