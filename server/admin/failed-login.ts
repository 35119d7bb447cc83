import { Counter } from 'prom-client';
import type { Metrics } from '../metrics.ts';

/** Where a wrong admin token was tried: the login form or the API's bearer header. */
export type LoginSurface = 'page' | 'api';

/** The counter an operator watches for guessing: `analytics_admin_login_failures_total`. */
export const LOGIN_FAILURES_METRIC = 'analytics_admin_login_failures_total';

/** How long a wrong admin token is held before the answer: guessing gets slow, a typo barely notices. */
export const DEFAULT_FAILURE_DELAY_MS = 300;

/** Counts and slows failed logins. */
export interface FailedLogins {
  /** Counts one failure, then resolves after the delay. */
  (surface: LoginSurface): Promise<void>;
}

/**
 * The failed-login handler for one metrics registry; the pages and the API share its counter
 * (registered once, found again by name by the second caller).
 */
export function failedLogins(metrics: Metrics, delayMs: number = DEFAULT_FAILURE_DELAY_MS): FailedLogins {
  const existing = metrics.registry.getSingleMetric(LOGIN_FAILURES_METRIC);
  const counter =
    existing instanceof Counter
      ? (existing as Counter<'surface'>)
      : new Counter({
          name: LOGIN_FAILURES_METRIC,
          help: 'Wrong admin tokens tried, on the login form (page) or the API (api)',
          labelNames: ['surface'],
          registers: [metrics.registry],
        });
  return async function failedLogin(surface) {
    counter.inc({ surface });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  };
}
