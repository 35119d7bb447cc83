import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { runCollectorToExit, startCollector } from '../../harness/collector-process.ts';
import { embeddedPostgres, freePort } from '../../harness/postgres-server.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openPostgres } from '../../server/store/postgres/postgres-driver.ts';
import { sqlStore } from '../../server/store/sql-store.ts';
import { StoreUnavailableError } from '../../server/store/errors.ts';
import { addTestToken, makeTestApp, openTestStore } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

const dataDir = join(tmpdir(), `analytics-pg-outage-${process.pid}-${Date.now()}`);
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('PostgreSQL that is not there', () => {
  it('at start-up: one clear line naming where, no password, and exit 1', async () => {
    const port = await freePort();
    const { code, output } = await runCollectorToExit({ ANALYTICS_DB: `postgres://analytics:hunter2-secret@127.0.0.1:${port}/analytics` });
    expect(code).toBe(1);
    expect(output).toMatch(new RegExp(`cannot use the PostgreSQL database at 127\\.0\\.0\\.1:${port}/analytics: .*ECONNREFUSED`));
    expect(output).not.toContain('hunter2-secret');
    expect(output.trim().split('\n')).toHaveLength(1);
  });

  it('while running: /collect and /healthz answer 503 with Retry-After, and both recover by themselves, losing nothing', async () => {
    const port = await freePort();
    // A server of this test's own, which it stops and starts again (persistent: its data stays).
    const server = await embeddedPostgres({ dir: dataDir, port, password: 'pw', persistent: true });
    await server.initialise();
    await server.start();
    stopAfterTest({ stop: () => server.stop() });
    await server.createDatabase('analytics');
    const url = `postgres://postgres:pw@127.0.0.1:${port}/analytics`;
    const { store } = await openTestStore({ postgresUrl: url });
    await store.install(TEAM_TOKEN, Date.now());
    await store.createToken({ name: 'T', measurementId: 'G-OUTAGE1', apiSecret: 's', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] }, Date.now());
    await store.close();

    const collector = await startCollector({ ANALYTICS_DB: url, ANALYTICS_GA_URL: ga.url });
    stopAfterTest({ stop: () => collector.stop('SIGKILL') });
    const hit = (path: string) =>
      fetch(`${collector.url}/collect`, { method: 'POST', body: JSON.stringify({ path, title: 't', language: 'en' }), headers: { 'User-Agent': CHROME } });

    expect((await hit('/before')).status).toBe(204);
    await server.stop();
    const started = Date.now();
    const during = await hit('/during');
    expect(during.status).toBe(503);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await during.text()).toMatch(/database is unavailable/);
    const health = await fetch(`${collector.url}/healthz`);
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).not.toBeNull();
    expect(Date.now() - started).toBeLessThan(10_000); // refused, not hung

    await server.start();
    let after = 0;
    for (let tries = 0; tries < 50 && after !== 204; tries += 1) {
      after = (await hit('/after')).status;
      if (after !== 204) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(after).toBe(204);
    expect((await fetch(`${collector.url}/healthz`)).status).toBe(200);
    await ga.waitFor(() => ga.delivered().length >= 2, 30_000);
    const delivered = ga.delivered().map((e) => new URL(String(e.params.page_location)).pathname).sort();
    expect(delivered).toEqual(['/after', '/before']);
  }, 90_000);
});

/** A TCP proxy to `target` that can stop passing bytes either way, as a server that stopped answering would. */
async function freezingProxy(target: URL): Promise<{ url: string; freeze(frozen: boolean): void }> {
  let frozen = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.on('data', (data) => frozen || upstream.write(data));
    upstream.on('data', (data) => frozen || client.write(data));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stopAfterTest({
    stop: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
  const url = new URL(target);
  url.host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return { url: url.href, freeze: (value) => (frozen = value) };
}

describe('PostgreSQL that is there but does not answer', () => {
  it('a lock held elsewhere past 5 s is a 503 saying the database is locked, not a hang', async () => {
    const { app, services } = await makeTestApp({ database: 'postgres', config: { gaUrl: ga.url } });
    stopAfterTest({ stop: () => services.store.close() });
    await addTestToken(services);
    const hit = (path: string) =>
      app.request('/collect', { method: 'POST', body: JSON.stringify({ path, title: 't', language: 'en' }), headers: { 'User-Agent': CHROME } });
    const pg = (await import('pg')).default;
    const other = new pg.Client(services.location);
    await other.connect();
    stopAfterTest({ stop: () => other.end() });
    await other.query('BEGIN');
    await other.query('LOCK TABLE outbox IN EXCLUSIVE MODE');
    const started = Date.now();
    const during = await hit('/while-locked');
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(during.status).toBe(503);
    expect(Number(during.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await during.text()).toMatch(/locked/);
    await other.query('ROLLBACK');
    expect((await hit('/after-the-lock')).status).toBe(204);
  }, 30_000);

  it('a statement left unanswered is given up after the query timeout, and the next connection works', async () => {
    const { location } = await openTestStore('postgres');
    const proxy = await freezingProxy(new URL(location));
    const store = sqlStore(await openPostgres(proxy.url, { max: 2, queryTimeoutMs: 1_000 }));
    stopAfterTest({ stop: () => store.close() });
    await store.ping();
    proxy.freeze(true);
    const started = Date.now();
    await expect(store.ping()).rejects.toThrow(StoreUnavailableError);
    await expect(store.enqueue([{ tokenId: 1, name: 'task_event', params: { task: 'x' }, occurredAt: Date.now() }])).rejects.toThrow(StoreUnavailableError);
    expect(Date.now() - started).toBeLessThan(8_000);
    proxy.freeze(false);
    // The connections that went unanswered were dropped: new ones answer.
    await store.ping();
    await store.enqueue([{ tokenId: 1, name: 'task_event', params: { task: 'x' }, occurredAt: Date.now() }]);
  }, 30_000);
});
