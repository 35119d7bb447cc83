/** Retry timing: exponential back-off with jitter, so many installs do not retry GA in step. */
export const BACKOFF = { baseMs: 1_000, maxMs: 10 * 60_000 } as const;

/**
 * How long to wait before the next try after `attempts` failed ones (0 = first failure).
 * Half the exponential step is fixed and half random ("equal jitter").
 * @example retryDelay(0, () => 0) // 500; retryDelay(3, () => 1) // 8000
 */
export function retryDelay(attempts: number, random: () => number = Math.random): number {
  const step = Math.min(BACKOFF.maxMs, BACKOFF.baseMs * 2 ** Math.min(attempts, 30));
  return Math.round(step / 2 + (step / 2) * random());
}

/** The delay GA asked for in a `Retry-After` header (seconds or an HTTP date), if any, capped at the back-off maximum. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header);
  const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(header) - now;
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return Math.min(ms, BACKOFF.maxMs);
}
