import type { Hono } from 'hono';
import { createApp } from '../../server/app.ts';
import type { Clock } from '../../server/clock.ts';
import { loadConfig, type Config } from '../../server/config.ts';
import { openDatabase } from '../../server/db/database.ts';
import { tokens, type NewToken, type Token } from '../../server/db/schema.ts';
import { silentLogger, type Logger } from '../../server/log.ts';
import { createServices, type Services } from '../../server/services.ts';

/** A config as start-up would parse it from an empty environment, with `overrides` on top. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ ANALYTICS_DB: ':memory:' }), ...overrides };
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
export function addTestToken(services: Services, overrides: Partial<NewToken> = {}): Token {
  tokenCounter += 1;
  const now = services.clock();
  const token = services.db
    .insert(tokens)
    .values({
      name: `Test property ${tokenCounter}`,
      measurementId: `G-TEST${tokenCounter}`,
      apiSecret: `secret-${tokenCounter}`,
      createdAt: now,
      updatedAt: now,
      ...overrides,
    })
    .returning()
    .get();
  services.tokens.invalidate();
  return token;
}
