import { systemClock, type Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { DailyStatsRunner } from './daily-stats.ts';
import { openDatabase, type Db } from './db/database.ts';
import { ensureIdentity, type Identity } from './identity.ts';
import { consoleLogger, type Logger } from './log.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { DEFAULT_GA_TIMEOUT_MS } from './relay/ga-client.ts';
import { DEFAULT_OUTBOX_MAX, Outbox } from './relay/outbox.ts';
import { TokenDirectory } from './tokens.ts';

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
  /** How long any request to GA may take before it is abandoned (validation; the relay's default). */
  gaTimeoutMs: number;
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
  /** Default {@link DEFAULT_GA_TIMEOUT_MS}. */
  gaTimeoutMs?: number;
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
    gaTimeoutMs: options.gaTimeoutMs ?? DEFAULT_GA_TIMEOUT_MS,
  };
}
