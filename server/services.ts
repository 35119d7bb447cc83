import { systemClock, type Clock } from './core/clock.ts';
import type { Config } from './core/config.ts';
import { consoleLogger, type Logger } from './core/log.ts';
import { createMetrics, type Metrics } from './core/metrics.ts';
import { DEFAULT_GA_TIMEOUT_MS } from './delivery/ga-client.ts';
import { Outbox } from './delivery/outbox.ts';
import { Relay, type Delivery, type RelayOptions } from './delivery/relay.ts';
import type { DeliveryThread } from './delivery/delivery-thread.ts';
import { DailyStats, type DailyStatsOptions } from './host-events/daily-stats.ts';
import type { Store } from './store/store.ts';
import type { Identity } from './store/types.ts';
import { TEAM_TOKEN } from './tokens/team-token.ts';
import { Tokens } from './tokens/tokens.ts';

/** Everything the routes, the relay and the schedule work with; built once by {@link createServices}, never patched. */
export interface Services {
  config: Config;
  store: Store;
  identity: Identity;
  outbox: Outbox;
  tokens: Tokens;
  metrics: Metrics;
  clock: Clock;
  log: Logger;
  /** A fetch for every request to GA (tests hand in their own); undefined: node's HTTP client on a keep-alive pool. */
  fetch: typeof fetch | undefined;
  /** How long any request to GA may take before it is abandoned (validation; the relay's default). */
  gaTimeoutMs: number;
  /** Delivery to GA, in this thread or one of its own; the admin's retry goes through it. */
  relay: Delivery;
  /** The daily-stats schedule; the admin's "run now" goes through it. */
  dailyStats: DailyStats;
  /** The thread holding the store's connection and the relay, when they run in one (`npm start`). */
  thread: DeliveryThread | undefined;
}

/** What a caller chooses when building {@link Services}; the rest has defaults. */
export interface ServiceOptions {
  config: Config;
  /** An open, migrated store (see `openStore`). */
  store: Store;
  clock?: Clock;
  log?: Logger;
  fetch?: typeof fetch;
  /** Default {@link DEFAULT_GA_TIMEOUT_MS}. */
  gaTimeoutMs?: number;
  /** Default: `config.outboxMax`. */
  outboxMax?: number;
  relay?: RelayOptions;
  /** The thread holding the store's connection: the relay runs there too. */
  thread?: DeliveryThread;
  dailyStats?: DailyStatsOptions;
}

/**
 * Makes sure the install exists (identity and token 1, once whatever the number of processes), loads the
 * tokens, and builds every service over the store, in dependency order.
 * @example const services = await createServices({ config, store: await openStore(config.dbPath) });
 */
export async function createServices(options: ServiceOptions): Promise<Services> {
  const { config, store } = options;
  const clock = options.clock ?? systemClock;
  const log = options.log ?? consoleLogger;
  const fetchGa = options.fetch;
  const gaTimeoutMs = options.gaTimeoutMs ?? DEFAULT_GA_TIMEOUT_MS;
  const identity = await store.install(TEAM_TOKEN, clock());
  const metrics = createMetrics();
  const outbox = new Outbox(store, metrics, clock, options.outboxMax ?? config.outboxMax);
  metrics.depth = () => outbox.depth();
  const tokens = new Tokens(store, { clock });
  await tokens.refresh();
  const relayOptions = { leaseMs: config.leaseSeconds * 1000, ...options.relay };
  let relay: Delivery;
  if (options.thread) {
    const { random: _random, ...threadOptions } = relayOptions;
    // The thread wakes its relay itself after each group commit it makes (no message a commit).
    relay = options.thread.relay({ config, identity, gaTimeoutMs, options: threadOptions });
  } else {
    relay = new Relay({ config, store, identity, outbox, metrics, clock, log, fetch: fetchGa, gaTimeoutMs }, relayOptions);
  }
  const dailyStats = new DailyStats({ config, store, outbox, tokens, clock, log }, options.dailyStats);
  return { config, store, identity, outbox, tokens, metrics, clock, log, fetch: fetchGa, gaTimeoutMs, relay, dailyStats, thread: options.thread };
}

const servicesByOwner = new WeakMap<object, Services>();

/** Remembers which services an object (an `Analytics`) runs on, for the entry point and tests; not public API. */
export function attachServices<T extends object>(owner: T, services: Services): T {
  servicesByOwner.set(owner, services);
  return owner;
}

/** The services an object made by `createAnalytics` runs on. */
export function servicesOf(owner: object): Services {
  const services = servicesByOwner.get(owner);
  if (!services) throw new Error('not made by createAnalytics');
  return services;
}
