import { systemClock, type Clock } from './core/clock.ts';
import type { Config } from './core/config.ts';
import type { DailyStatsRunner } from './host-events/daily-stats.ts';
import { openDatabase, type Db } from './store/database.ts';
import { ensureIdentity, type Identity } from './store/install.ts';
import { consoleLogger, type Logger } from './core/log.ts';
import { createMetrics, type Metrics } from './core/metrics.ts';
import { DEFAULT_OUTBOX_MAX, Outbox } from './delivery/outbox.ts';
import { TokenDirectory } from './tokens/tokens.ts';

/** Everything the routes and the relay work with; built once, passed in (never a module singleton). */
export interface Services {
  config: Config;
  db: Db;
  identity: Identity;
  outbox: Outbox;
  /** Which tokens receive what (cached; invalidate after changing tokens). */
  tokens: TokenDirectory;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  /** Used for every request to GA; tests may hand in their own. */
  fetch: typeof fetch;
  /** The daily-stats schedule, when one runs (the admin's "run now"); set by `createAnalytics`. */
  dailyStats?: DailyStatsRunner;
}

/** What a caller may choose when building {@link Services}; the rest has defaults. */
export interface ServiceOptions {
  config: Config;
  /** An open, migrated database; otherwise `config.dbPath` is opened. */
  db?: Db;
  clock?: Clock;
  log?: Logger;
  fetch?: typeof fetch;
  outboxMax?: number;
}

/**
 * Opens the database (applying migrations), makes sure the install identity exists, and builds the outbox.
 * @example const services = createServices({ config: loadConfig() });
 */
export function createServices(options: ServiceOptions): Services {
  const clock = options.clock ?? systemClock;
  const db = options.db ?? openDatabase(options.config.dbPath);
  const identity = ensureIdentity(db, clock());
  const metrics = createMetrics();
  const outbox = new Outbox(db, metrics, clock, options.outboxMax ?? DEFAULT_OUTBOX_MAX);
  return {
    config: options.config,
    db,
    identity,
    outbox,
    tokens: new TokenDirectory(db),
    metrics,
    clock,
    log: options.log ?? consoleLogger,
    fetch: options.fetch ?? globalThis.fetch.bind(globalThis),
  };
}
