import type { Context, MiddlewareHandler } from 'hono';
import type { Clock } from './clock.ts';
import { bearerToken, RetryLaterError, sameSecret } from './http.ts';
import { rateLimitedLine, type Logger } from './log.ts';
import type { Metrics } from './metrics.ts';
import { addressGroup, clientAddress } from './client-address.ts';

/** Where a credential was tried: the admin login form, the admin API, the events API, or `/metrics`. */
export type CredentialSurface = 'page' | 'api' | 'events' | 'metrics';

/** The limits of the shared failed-attempt budget. */
export interface GuardLimits {
  /** Failures one address (IPv6: its /64) may make per window; past it, everything it sends is 429. */
  perAddress: number;
  /** Failures from all addresses together per window; past it, any address that failed once is 429 too. */
  total: number;
  windowMs: number;
  /** Addresses remembered at once; the least recently seen go first. */
  maxAddresses: number;
  /** A wrong credential is answered after this long: guessing gets slow, a typo barely notices. */
  delayMs: number;
  /** At most one log line about failures this often. */
  logEveryMs: number;
}

export const DEFAULT_GUARD_LIMITS: GuardLimits = {
  perAddress: 10,
  total: 100,
  windowMs: 60_000,
  maxAddresses: 10_000,
  delayMs: 300,
  logEveryMs: 10_000,
};

interface Window {
  start: number;
  failures: number;
}

/**
 * One failed-attempt budget for every credential the collector takes (admin login, admin API bearer,
 * events key, metrics token), so that guessing at one is guessing at all. A correct credential from an
 * address that has not failed still works during a flood from others.
 */
export class CredentialGuard {
  private readonly limits: GuardLimits;
  private readonly byAddress = new Map<string, Window>();
  private total: Window = { start: 0, failures: 0 };
  private saturated = false;
  private readonly noteFailure: ReturnType<typeof rateLimitedLine>;

  constructor(
    private readonly deps: { clock: Clock; log: Logger; metrics: Metrics },
    limits: Partial<GuardLimits> = {},
  ) {
    this.limits = { ...DEFAULT_GUARD_LIMITS, ...limits };
    this.noteFailure = rateLimitedLine(deps.clock, this.limits.logEveryMs);
  }

  /** Seconds until `address` may try again, or undefined when it may try now. */
  refusal(address: string): number | undefined {
    const now = this.deps.clock();
    const total = this.current(this.total, now);
    const flooded = total !== undefined && total.failures >= this.limits.total;
    const own = this.current(this.byAddress.get(address), now);
    if (!own || own.failures === 0) {
      // Every remembered address is locked out and all of them are guessing: an address that could not even be
      // remembered is refused too, rather than let forgetting undo a lockout.
      return flooded && this.saturated ? this.secondsLeft((total as Window).start, now) : undefined;
    }
    const overOwn = own.failures >= this.limits.perAddress;
    if (!overOwn && !flooded) return undefined;
    // Over its own budget it waits out its own window; caught in a flood only, whichever window ends first.
    return this.secondsLeft(overOwn ? own.start : Math.min(own.start, (total as Window).start), now);
  }

  /** Counts a wrong credential from `address`, logs at a bounded rate, then resolves after the delay. */
  async failed(address: string, surface: CredentialSurface): Promise<void> {
    const now = this.deps.clock();
    const own = this.current(this.byAddress.get(address), now) ?? { start: now, failures: 0 };
    own.failures += 1;
    // Re-inserted so the map's order is least recently seen first.
    this.byAddress.delete(address);
    this.byAddress.set(address, own);
    if (this.byAddress.size > this.limits.maxAddresses) this.forgetOne(now);
    this.total = this.current(this.total, now) ?? { start: now, failures: 0 };
    this.total.failures += 1;
    this.deps.metrics.credentialFailures.inc({ surface });
    this.noteFailure((n) => this.deps.log.warn(`${n} wrong ${n === 1 ? 'credential' : 'credentials'} tried (latest at ${surface})`));
    await new Promise((resolve) => setTimeout(resolve, this.limits.delayMs));
  }

  /**
   * Makes room in a full map: an expired entry, else the least recently seen one that is not locked out.
   * A locked-out address is never forgotten; when every entry is locked out, the newest goes and the guard
   * counts as saturated (see {@link refusal}).
   */
  private forgetOne(now: number): void {
    this.saturated = false;
    for (const [address, window] of this.byAddress) {
      if (!this.current(window, now) || window.failures < this.limits.perAddress) {
        this.byAddress.delete(address);
        return;
      }
    }
    const newest = [...this.byAddress.keys()].at(-1);
    if (newest !== undefined) this.byAddress.delete(newest);
    this.saturated = true;
  }

  private secondsLeft(windowStart: number, now: number): number {
    return Math.max(1, Math.ceil((windowStart + this.limits.windowMs - now) / 1000));
  }

  /** The client address a request is judged by: IPv6 grouped by /64. */
  addressOf(c: Context, trustProxy: boolean): string {
    return addressGroup(clientAddress(c, trustProxy));
  }

  private current(window: Window | undefined, now: number): Window | undefined {
    return window && now - window.start < this.limits.windowMs ? window : undefined;
  }
}

/** Answers 429 with `Retry-After` when the request's address has used up its budget. */
export function refuseOverBudget(c: Context, guard: CredentialGuard, trustProxy: boolean): void {
  const retryAfter = guard.refusal(guard.addressOf(c, trustProxy));
  if (retryAfter === undefined) return;
  throw new RetryLaterError(429, 'too many wrong credentials from this address; try again later', retryAfter);
}

/** Options of {@link requireBearer}. */
export interface BearerOptions {
  secret: string;
  guard: CredentialGuard;
  surface: CredentialSurface;
  trustProxy: boolean;
  /** What a missing or wrong credential is told (never the secret). */
  missing: string;
  wrong: string;
  /** Named in the `WWW-Authenticate` challenge when given. */
  realm?: string;
}

/**
 * Lets a request through only with `Authorization: Bearer <secret>` (compared in constant time). A wrong
 * one is counted in the shared budget and answered slowly; an address over budget gets 429 whatever it sends.
 * @example app.use('*', requireBearer({ secret: config.eventsKey, guard, surface: 'events', ... }))
 */
export function requireBearer(options: BearerOptions): MiddlewareHandler {
  const challenge = { 'WWW-Authenticate': options.realm ? `Bearer realm="${options.realm}"` : 'Bearer' };
  return async function bearerCheck(c, next) {
    refuseOverBudget(c, options.guard, options.trustProxy);
    const given = bearerToken(c.req.header('authorization'));
    if (given === '') return c.json({ error: options.missing }, 401, challenge);
    if (!sameSecret(given, options.secret)) {
      await options.guard.failed(options.guard.addressOf(c, options.trustProxy), options.surface);
      return c.json({ error: options.wrong }, 401, challenge);
    }
    await next();
  };
}
