import type { RequestListener } from 'node:http';
import type { Hono } from 'hono';
import { createHttp } from './app.ts';
import type { Clock } from './core/clock.ts';
import { resolveConfig, type Config } from './core/config.ts';
import type { StatsSource } from './host-events/daily-stats.ts';
import { DeliveryThread } from './delivery/delivery-thread.ts';
import { openStore } from './store/open-store.ts';
import type { Store } from './store/store.ts';
import { analyticsEvent, trackTask, type AnalyticsEventOptions } from './host-events/task-events.ts';
import { consoleLogger, type Logger } from './core/log.ts';
import type { RelayOptions } from './delivery/relay.ts';
import { attachServices, createServices, type Services } from './services.ts';

export { ConfigError, type Config } from './core/config.ts';
export { DatabaseError, StoreUnavailableError } from './store/errors.ts';
export { openStore } from './store/open-store.ts';
export type { Store } from './store/store.ts';
export { DAY_MS, type DailyStatsRun, type DailyStatsRunner, type HostStats, type StatsSource } from './host-events/daily-stats.ts';
export { InvalidEventError, OWN_NAMESPACE, type AnalyticsEventOptions, type EventType } from './host-events/task-events.ts';
export type { Logger } from './core/log.ts';

/** How a host sets up analytics; everything is optional. */
export interface AnalyticsOptions {
  /** An open store (see `openStore`); the host keeps it open after `stop()`. */
  store?: Store;
  /** A SQLite file or a PostgreSQL URL to open (and close on `stop()`); otherwise `config.dbPath`. */
  database?: string;
  /**
   * Run the store's connection and the delivery to GA in a worker thread of their own, so that neither a commit's
   * sync nor the relay's work ever holds up the host's event loop (`npm start` does). Ignored with `store`.
   */
  thread?: boolean;
  /** Settings over those of `env`. */
  config?: Partial<Config>;
  /** The environment to read `ANALYTICS_*` settings from; the process's when omitted. */
  env?: Record<string, string | undefined>;
  /** The host's numbers for the daily stats; without it, the latest `PUT /api/stats`. */
  stats?: StatsSource;
  /** How long after `start()` the daily stats first look whether a run is due (default one minute). */
  dailyStatsStartDelayMs?: number;
  log?: Logger;
  fetch?: typeof fetch;
  clock?: Clock;
  relay?: RelayOptions;
}

/** Analytics inside a host app: its routes, its two calls, and its lifecycle. */
export interface Analytics {
  /** The collector's routes (`/analytics.js`, `/collect`, `/api/…`, `/admin/…`, `/healthz`): mount under a prefix. */
  app: Hono;
  /**
   * Node's request listener serving `app` at the root, as `npm start` does (README: From a Node host). It takes
   * `POST /collect` straight from Node's request, without building a web Request for it. Like @hono/node-server's
   * `serve()`, it puts that package's Request and Response in the globals, once it is first asked for.
   * @example http.createServer({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1_000 }, analytics.listener).listen(3000, '127.0.0.1')
   */
  readonly listener: RequestListener;
  /**
   * Queues one event per token whose switch is on; resolves with how many once stored, rejects with an
   * `InvalidEventError` for an event that cannot be sent. See {@link AnalyticsEventOptions}.
   */
  analyticsEvent(options: AnalyticsEventOptions): Promise<number>;
  /** Runs `fn` and reports its success (returned number as value) or its error's class name. */
  trackTask<T>(namespace: string, task: string, fn: () => T | Promise<T>): Promise<T>;
  /** Starts delivery to GA and the daily-stats schedule (unless the relay is off in this process). */
  start(): void;
  /** Stops both, and closes the database if it was opened here. */
  stop(): Promise<void>;
  /** The settings in force (environment, then `config`; an opt-out anywhere wins). */
  readonly config: Readonly<Config>;
  /** The install's identity, as reported to GA. */
  readonly install: { readonly uuid: string; readonly createdAt: number };
}

/**
 * Sets up analytics for a host app in Node: settings from the environment with `config` on top, the store
 * opened and migrated (SQLite file or PostgreSQL URL), the routes built. Nothing is sent before `start()`.
 * @example
 * const analytics = await createAnalytics({ database: './data/analytics.db', stats: () => ({ users, tokens, apps }) });
 * host.route('/analytics', analytics.app);
 * analytics.start();
 * await analytics.trackTask('billing', 'send_invoices', sendInvoices);
 */
export async function createAnalytics(options: AnalyticsOptions = {}): Promise<Analytics> {
  const config: Config = resolveConfig(
    { ...options.config, ...(options.database !== undefined ? { dbPath: options.database } : {}) },
    options.env,
  );
  const ownsStore = options.store === undefined;
  const thread = ownsStore && options.thread ? await DeliveryThread.open(config.dbPath, options.log ?? consoleLogger) : undefined;
  const store = options.store ?? thread?.store ?? (await openStore(config.dbPath));
  let services: Services;
  try {
    services = await createServices({
      config,
      store,
      clock: options.clock,
      log: options.log,
      fetch: options.fetch,
      relay: options.relay,
      thread,
      dailyStats: { stats: options.stats, startDelayMs: options.dailyStatsStartDelayMs },
    });
  } catch (error) {
    if (ownsStore) await store.close();
    throw error;
  }
  const { relay, dailyStats } = services;
  const http = createHttp(services);
  const { app } = http;
  let stopped: Promise<void> | undefined;

  return attachServices<Analytics>(
    {
      app,
      get listener() {
        return http.listener;
      },
      config,
      install: { uuid: services.identity.uuid, createdAt: services.identity.createdAt },
      // A promise in every case: an event that cannot be sent rejects (with InvalidEventError), never throws past a `.catch`.
      analyticsEvent: async (eventOptions) => analyticsEvent(services, eventOptions),
      trackTask: (namespace, task, fn) => trackTask(services, namespace, task, fn),
      start() {
        if (stopped) throw new Error('analytics was stopped; create a new instance');
        // A process with the relay off only collects: another one delivers and keeps the schedule.
        if (!config.relay) return;
        relay.start();
        dailyStats.start();
      },
      stop() {
        stopped ??= (async () => {
          await dailyStats.stop();
          await relay.stop();
          // What was queued just before (a `trackTask` reports in the background) is written before the store closes.
          await services.outbox.idle();
          await services.outbox.settled();
          if (ownsStore) await store.close();
        })();
        return stopped;
      },
    },
    services,
  );
}
