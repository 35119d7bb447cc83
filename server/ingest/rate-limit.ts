import type { MiddlewareHandler } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { clientAddress } from '../core/client-address.ts';

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
