import { addressGroup } from '../core/client-address.ts';
import { RetryLaterError } from '../core/http.ts';

/** Options of {@link rateLimit}. */
export interface RateLimitOptions {
  /** Requests allowed per client address (IPv6: per /64) per window. */
  max: number;
  windowMs?: number;
  /** Addresses tracked at once; past it the least recently seen is forgotten (memory stays bounded). */
  maxClients?: number;
}

interface Window {
  start: number;
  used: number;
}

/**
 * A fixed-window rate limit per client address (IPv6 grouped by /64), kept in memory: a call for a client over
 * the limit throws a 429 that says when to come back ({@link RetryLaterError}). A full map forgets the least
 * recently seen address, never one that keeps sending: other addresses cannot reset a client that is being limited.
 * @example const check = rateLimiter({ max: 600 }); check(clientAddress(c, trustProxy));
 */
export function rateLimiter(options: RateLimitOptions): (address: string) => void {
  const windowMs = options.windowMs ?? 60_000;
  const maxClients = options.maxClients ?? 100_000;
  // A Map keeps insertion order: re-inserting on every request makes its first key the least recently seen.
  const clients = new Map<string, Window>();
  /** The key inserted last: it is the map's last already, and moving it there again is left out. */
  let lastKey: string | undefined;
  return function checkRate(address) {
    const now = Date.now();
    const key = addressGroup(address);
    let window = clients.get(key);
    const kept = window !== undefined;
    if (!window) {
      window = { start: now, used: 0 };
    } else if (now - window.start >= windowMs) {
      window.start = now;
      window.used = 0;
    }
    window.used += 1;
    if (!kept || key !== lastKey) {
      clients.delete(key);
      clients.set(key, window);
      lastKey = key;
      if (clients.size > maxClients) clients.delete(clients.keys().next().value as string);
    }
    if (window.used > options.max) {
      throw new RetryLaterError(429, 'too many requests', Math.max(1, Math.ceil((window.start + windowMs - now) / 1000)));
    }
  };
}
