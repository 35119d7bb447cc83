import type { Hono } from 'hono';
import { createApp } from '../../server/app.ts';
import type { Clock } from '../../server/core/clock.ts';
import { loadConfig, type Config } from '../../server/core/config.ts';
import { openDatabase } from '../../server/store/database.ts';
import type { Token } from '../../server/store/schema.ts';
import type { NewTokenInput } from '../../server/tokens/token-input.ts';
import { silentLogger, type Logger } from '../../server/core/log.ts';
import { createServices, type Services } from '../../server/services.ts';

/** The metrics token of test apps. */
export const METRICS_TOKEN = 'metrics-token-for-tests-0123';

/** A config as start-up would parse it from an empty environment (plus a metrics token), with `overrides` on top. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ ANALYTICS_DB: ':memory:' }), metricsToken: METRICS_TOKEN, ...overrides };
}

/** The app's `/metrics` text, read with the test metrics token. */
export async function metricsText(app: Hono): Promise<string> {
  const res = await app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

export interface TestAppOptions {
  config?: Partial<Config>;
  /** A SQLite file; in memory when omitted. */
  dbPath?: string;
  clock?: Clock;
  log?: Logger;
  outboxMax?: number;
  /** Stands in for GA's network (the real fetch to `config.gaUrl` otherwise). */
  fetch?: typeof fetch;
  gaTimeoutMs?: number;
}

/** Services over a migrated database (in memory unless `dbPath` is given), logging nothing. */
export function makeTestServices(options: TestAppOptions = {}): Services {
  const config = testConfig({ dbPath: options.dbPath ?? ':memory:', ...options.config });
  return createServices({
    config,
    db: openDatabase(config.dbPath),
    clock: options.clock,
    log: options.log ?? silentLogger,
    outboxMax: options.outboxMax,
    fetch: options.fetch,
    gaTimeoutMs: options.gaTimeoutMs,
  });
}

/** An app over {@link makeTestServices}; call `app.request()` on it. */
export function makeTestApp(options: TestAppOptions = {}): { app: Hono; services: Services } {
  const services = makeTestServices(options);
  return { app: createApp(services), services };
}

/** A clock that moves only when told. */
export function fakeClock(start: number = Date.UTC(2026, 0, 1)): Clock & { advance(ms: number): void; set(ms: number): void } {
  let now = start;
  const clock = (() => now) as Clock & { advance(ms: number): void; set(ms: number): void };
  clock.advance = (ms) => {
    now += ms;
  };
  clock.set = (ms) => {
    now = ms;
  };
  return clock;
}

let tokenCounter = 0;

/** Adds a token that can receive events (a real-looking id and a secret), all features on unless overridden. */
export function addTestToken(services: Services, overrides: Partial<NewTokenInput> = {}): Token {
  tokenCounter += 1;
  return services.tokens.create({
    name: `Test property ${tokenCounter}`,
    measurementId: `G-TEST${tokenCounter}`,
    apiSecret: `secret-${tokenCounter}`,
    sendDailyStats: true,
    sendTaskEvents: true,
    sendPageViews: true,
    ignorePaths: [],
    ...overrides,
  });
}
