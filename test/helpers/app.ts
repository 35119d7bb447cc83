import { createServer, request as httpRequest, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Hono } from 'hono';
import { inject, onTestFinished } from 'vitest';
import { createHttp } from '../../server/app.ts';
import type { Clock } from '../../server/core/clock.ts';
import { loadConfig, type Config } from '../../server/core/config.ts';
import { silentLogger, type Logger } from '../../server/core/log.ts';
import type { RelayOptions } from '../../server/delivery/relay.ts';
import type { DailyStatsOptions } from '../../server/host-events/daily-stats.ts';
import { createServices, type Services } from '../../server/services.ts';
import { openPostgres } from '../../server/store/postgres/postgres-driver.ts';
import { openSqlite } from '../../server/store/sqlite/sqlite-driver.ts';
import type { SqlDriver } from '../../server/store/sql-driver.ts';
import { unpack } from '../../server/store/sql-packets.ts';
import { sqlStore } from '../../server/store/sql-store.ts';
import type { Store } from '../../server/store/store.ts';
import type { Token, TokenSettings } from '../../server/store/types.ts';
import { freshPostgresUrl } from '../../harness/postgres-server.ts';

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

/** Which database a test runs on: SQLite (a file, or in memory) or a fresh database on the test PostgreSQL. */
export type TestDatabase = 'sqlite' | 'postgres' | { sqliteFile: string } | { postgresUrl: string };

/** The kinds every store test runs on. */
export const DIALECTS = ['sqlite', 'postgres'] as const;

/** An open store and plain SQL on its connection, for tests that look at (or set up) rows directly. */
export interface TestStore {
  store: Store;
  /** The rows of `query` (`?` placeholders), on the store's own connection. */
  sql<R = Record<string, unknown>>(query: string, params?: unknown[]): Promise<R[]>;
  /** Where the store is: a SQLite path or a PostgreSQL URL (for a second process on the same data). */
  location: string;
}

/** Opens a migrated store of the kind asked for (a fresh database each time, unless a file or URL is named). */
export async function openTestStore(database: TestDatabase = 'sqlite'): Promise<TestStore> {
  let driver: SqlDriver;
  let location: string;
  if (database === 'sqlite') {
    location = ':memory:';
    driver = openSqlite(location);
  } else if (database === 'postgres') {
    location = await freshPostgresUrl(inject('pgUrl'));
    driver = await openPostgres(location, { max: 4 });
  } else if ('sqliteFile' in database) {
    location = database.sqliteFile;
    driver = openSqlite(location);
  } else {
    location = database.postgresUrl;
    driver = await openPostgres(location, { max: 4 });
  }
  return { store: sqlStore(driver), location, sql: async (query, params) => (await driver.query(query, params ?? [])).rows as never };
}

export interface TestAppOptions {
  config?: Partial<Config>;
  database?: TestDatabase;
  clock?: Clock;
  log?: Logger;
  outboxMax?: number;
  /** Stands in for GA's network (node's HTTP client to `config.gaUrl` otherwise). */
  fetch?: typeof fetch;
  gaTimeoutMs?: number;
  relay?: RelayOptions;
  dailyStats?: DailyStatsOptions;
}

/** Services (and the test's SQL) over a fresh, migrated store, logging nothing. */
export interface TestServices extends Services {
  sql: TestStore['sql'];
  location: string;
}

/** Services over a migrated store (SQLite in memory unless `database` says otherwise), logging nothing. */
export async function makeTestServices(options: TestAppOptions = {}): Promise<TestServices> {
  const { store, sql, location } = await openTestStore(options.database);
  const config = testConfig({ dbPath: location, ...options.config });
  const services = await createServices({
    config,
    store,
    clock: options.clock,
    log: options.log ?? silentLogger,
    outboxMax: options.outboxMax,
    fetch: options.fetch,
    gaTimeoutMs: options.gaTimeoutMs,
    relay: { lingerMs: 20, random: () => 0, ...options.relay },
    dailyStats: options.dailyStats,
  });
  return Object.assign(services, { sql, location });
}

/**
 * An app over {@link makeTestServices}; call `app.request()` on it. `listener()` is Node's listener for it, as
 * `npm start` serves it (made when first asked for, as `analytics.listener` is).
 */
export async function makeTestApp(options: TestAppOptions = {}): Promise<{ app: Hono; listener: () => RequestListener; services: TestServices }> {
  const services = await makeTestServices(options);
  const http = createHttp(services);
  return { app: http.app, listener: () => http.listener, services };
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
export function addTestToken(services: Pick<Services, 'tokens'>, overrides: Partial<TokenSettings> = {}): Promise<Token> {
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

/** Queues events at once (tests that need events in the outbox without going through a route). */
export function queueEvents(services: Pick<Services, 'outbox' | 'clock'>, events: Array<{ tokenId: number; name: string; params: Record<string, string | number>; occurredAt?: number }>): Promise<void> {
  return services.outbox.add(events.map((e) => ({ ...e, occurredAt: e.occurredAt ?? services.clock() })));
}

/** Resolves once `predicate` (which may ask the store) holds, checked every 20 ms; rejects after `timeoutMs`. */
export async function until(predicate: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** An outbox row as SQL reads it, one per event: a packet's events each as a waiting row of their own (see sql-packets.ts). */
export interface OutboxEventRow {
  id: number;
  token_id: number;
  name: string;
  params: string;
  device: string | null;
  device_key: string;
  occurred_at: number;
  attempts: number;
  next_attempt_at: number;
  status: string;
  last_error: string | null;
}

/** Every event in the outbox, in the order it was queued (`where`: a condition on the rows). */
export async function outboxEvents(services: Pick<TestStore, 'sql'>, where = '1 = 1'): Promise<OutboxEventRow[]> {
  const rows = await services.sql<OutboxEventRow & { events: string | null }>(
    `SELECT id, token_id, name, params, device, device_key, occurred_at, attempts, next_attempt_at, status, last_error, events FROM outbox WHERE ${where} ORDER BY id`,
  );
  return rows.flatMap(({ events, ...row }) =>
    events === null
      ? [row]
      : unpack(events).map((e) => ({ ...row, status: 'pending', params: e.params, device: e.device, device_key: e.deviceKey, occurred_at: e.occurredAt })),
  );
}

/** A request as the tests send it, to `app.request()` or over a real connection. */
export interface TestRequest {
  method?: string;
  /** A list sends the header once for each value. */
  headers?: Record<string, string | string[]>;
  body?: string;
}

/** `init` as `app.request()` takes it: a header given as a list is appended once for each value. */
export function requestInit(init: TestRequest): RequestInit {
  const headers = new Headers();
  for (const [name, value] of Object.entries(init.headers ?? {})) for (const one of [value].flat()) headers.append(name, one);
  return { method: init.method, body: init.body, headers };
}

/**
 * Serves `listener` on 127.0.0.1 until the test ends: `request` sends over a real connection (with exactly the
 * headers given, Content-Length too) and answers with a web Response, as `app.request()` does.
 */
export async function serveListener(listener: RequestListener): Promise<{ url: string; request(path: string, init?: TestRequest): Promise<Response> }> {
  const server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())).then(() => undefined));
  onTestFinished(() => void server.closeAllConnections());
  const { port } = server.address() as AddressInfo;
  const request = (path: string, init: TestRequest = {}) =>
    new Promise<Response>((resolve, reject) => {
      const body = init.body ?? '';
      const headers = { 'Content-Length': String(Buffer.byteLength(body)), ...init.headers };
      const req = httpRequest({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          resolve(new Response(status === 204 || status === 304 ? null : text, { status, headers: res.headers as Record<string, string> }));
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  return { url: `http://127.0.0.1:${port}`, request };
}
