import { servicesOf } from '../../server/services.ts';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Hono } from 'hono';
import { afterAll, describe, expect, inject, it, vi } from 'vitest';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { ConfigError, createAnalytics, InvalidEventError, openStore, StoreUnavailableError, type Analytics } from '../../server/index.ts';
import { silentLogger } from '../../server/core/log.ts';
import { addTestToken, openTestStore, outboxEvents, serveListener } from '../helpers/app.ts';
import { freshPostgresUrl } from '../../harness/postgres-server.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { validationMessages } from '../../harness/ga-validation.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const KEY = 'library-events-key-0123';
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const dir = mkdtempSync(join(tmpdir(), 'analytics-library-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));
let fileCounter = 0;

async function create(options: Parameters<typeof createAnalytics>[0] = {}): Promise<Analytics> {
  const analytics = await createAnalytics({
    database: join(dir, `lib-${++fileCounter}.db`),
    env: { ANALYTICS_GA_URL: ga.url, ANALYTICS_EVENTS_KEY: KEY },
    log: silentLogger,
    relay: { lingerMs: 10 },
    dailyStatsStartDelayMs: 0,
    ...options,
  });
  stopAfterTest(analytics);
  return analytics;
}

describe('createAnalytics', () => {
  it('mounts into a host app, sends task events and the daily stats, and closes its database on stop', async () => {
    const analytics = await create({ stats: () => ({ users: 10, tokens: 3, apps: ['forum'] }) });
    const token = await addTestToken(servicesOf(analytics));
    const host = new Hono();
    host.get('/', (c) => c.text('host home'));
    host.route('/analytics', analytics.app);

    const home = await host.request('/');
    expect(await home.text()).toBe('host home');
    // The collector's strict headers stay on its own routes.
    expect(home.headers.get('Content-Security-Policy')).toBeNull();
    expect((await host.request('/analytics/healthz')).status).toBe(200);
    const posted = await host.request('/analytics/api/events', {
      method: 'POST',
      headers: { Authorization: `Bearer ${KEY}` },
      body: JSON.stringify({ namespace: 'host', task: 'import', value: 4 }),
    });
    expect(posted.status).toBe(202);
    expect(await analytics.analyticsEvent({ namespace: 'host', task: 'reindex', value: true })).toBe(1);
    expect(await analytics.trackTask('host', 'cleanup', () => 9)).toBe(9);

    analytics.start();
    await ga.waitFor(() => ga.delivered().length === 8);
    expect(ga.delivered().every((e) => e.measurementId === token.measurementId)).toBe(true);
    expect(ga.delivered().map((e) => [e.name, e.params.task ?? e.params.label, e.params.value]).sort()).toEqual(
      [
        ['task_event', 'import', 4],
        ['task_event', 'reindex', 1],
        ['task_event', 'cleanup', 9],
        ['daily_stats', 'existence', 1],
        ['daily_stats', 'users', 10],
        ['daily_stats', 'tokens', 3],
        ['daily_stats', 'apps', 1],
        ['installed_app', 'forum', 1],
      ].sort(),
    );
    expect(await validationMessages(ga)).toEqual([]);
    expect(await servicesOf(analytics).dailyStats.lastRunAt()).toEqual(expect.any(Number));

    await analytics.stop();
    await analytics.stop();
    // The store it opened is closed.
    await expect(servicesOf(analytics).store.ping()).rejects.toThrow();
    expect(() => analytics.start()).toThrow(/stopped/);
  });

  it("leaves the global Request and Response to the host until its listener is asked for, as serve() would swap them", async () => {
    const own = { Request: globalThis.Request, Response: globalThis.Response };
    const analytics = await create();
    const host = new Hono();
    host.route('/analytics', analytics.app);
    expect((await host.request('/analytics/healthz')).status).toBe(200);
    expect([globalThis.Request, globalThis.Response]).toEqual([own.Request, own.Response]);
    // `npm start` asks for it, and serves it: @hono/node-server's faster classes are then the globals.
    const { url } = await serveListener(analytics.listener);
    expect(globalThis.Response).not.toBe(own.Response);
    Object.defineProperty(globalThis, 'Request', { value: own.Request });
    Object.defineProperty(globalThis, 'Response', { value: own.Response });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
  });

  it('answers an event that cannot be sent with a rejected promise, so that a .catch() sees it', async () => {
    const analytics = await create();
    const caught: unknown[] = [];
    await analytics.analyticsEvent({ namespace: '', task: 'nightly' }).catch((error: unknown) => caught.push(error));
    await analytics.analyticsEvent({ namespace: 'cron', task: 'line\nbreak' }).catch((error: unknown) => caught.push(error));
    expect(caught).toHaveLength(2);
    for (const error of caught) expect(error).toBeInstanceOf(InvalidEventError);
  });

  it('gives the admin a daily-stats run on demand', async () => {
    const analytics = await create();
    await addTestToken(servicesOf(analytics));
    const run = await servicesOf(analytics).dailyStats.runNow();
    expect(run).toMatchObject({ queued: 1, withNumbers: false });
  });

  it('honours ANALYTICS_DISABLED from the environment: nothing queued, no GA request', async () => {
    const analytics = await create({ env: { ANALYTICS_GA_URL: ga.url, ANALYTICS_DISABLED: 'true' } });
    await addTestToken(servicesOf(analytics));
    expect(await analytics.analyticsEvent({ namespace: 'a', task: 'b' })).toBe(0);
    expect(await analytics.trackTask('a', 'b', () => 1)).toBe(1);
    analytics.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ga.requests).toEqual([]);
  });

  it('keeps the opt-out of the process environment even when handed an environment of its own', async () => {
    vi.stubEnv('ANALYTICS_DISABLED', 'true');
    try {
      expect((await create({ env: {} })).config.disabled).toBe(true);
    } finally {
      vi.unstubAllEnvs();
    }
  });

  it('lets config override the environment except an opt-out, and refuses bad values from either', async () => {
    const analytics = await create({ env: { ANALYTICS_APP_VERSION: '4.0.0' }, config: { appVersion: '5.0.0' } });
    expect(analytics.config).toMatchObject({ disabled: false, appVersion: '5.0.0' });
    const optedOut = await create({ env: { ANALYTICS_DISABLED: 'true' }, config: { disabled: false } });
    expect(optedOut.config.disabled).toBe(true);
    expect((await create({ config: { disabled: true } })).config.disabled).toBe(true);
    await expect(create({ env: { ANALYTICS_DISABLED: 'maybe' } })).rejects.toThrow(ConfigError);
    await expect(create({ env: { ANALYTICS_RELAY: 'maybe' } })).rejects.toThrow(/^ANALYTICS_RELAY must be on or off/);
    await expect(create({ config: { adminToken: 'short' } })).rejects.toThrow(/adminToken must be at least 16 characters/);
    await expect(create({ config: { gaUrl: 'ftp://x' } })).rejects.toThrow(/gaUrl must be an http\(s\) URL/);
    await expect(create({ config: { gaUrl: 'https://ga.example/?' } })).rejects.toThrow(/gaUrl must be an http\(s\) URL/);
    await expect(create({ config: { outboxMax: 0 } })).rejects.toThrow(/outboxMax must be a whole number of 1 or more/);
    const tidied = await create({ config: { gaUrl: 'https://region1.google-analytics.com/', pageOrigin: 'https://auth.example.org/some/page' } });
    expect(tidied.config).toMatchObject({ gaUrl: 'https://region1.google-analytics.com', pageOrigin: 'https://auth.example.org' });
  });

  it('leaves a store it was handed open', async () => {
    const store = await openStore(':memory:');
    const analytics = await create({ store });
    analytics.start();
    await analytics.stop();
    await expect(store.ping()).resolves.toBeUndefined();
    await store.close();
  });

  it('only collects with ANALYTICS_RELAY=off: start() sends nothing, the events wait for another process', async () => {
    const analytics = await create({ env: { ANALYTICS_GA_URL: ga.url, ANALYTICS_RELAY: 'off' } });
    expect(analytics.config.relay).toBe(false);
    await addTestToken(servicesOf(analytics));
    expect(await analytics.analyticsEvent({ namespace: 'host', task: 'import' })).toBe(1);
    analytics.start();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(ga.requests).toEqual([]);
    expect(await servicesOf(analytics).outbox.depth()).toBe(1);
  });

  it('runs on a PostgreSQL URL, and closes its pool on stop', async () => {
    const analytics = await create({ database: await freshPostgresUrl(inject('pgUrl')) });
    const token = await addTestToken(servicesOf(analytics));
    expect(servicesOf(analytics).store.dialect).toBe('postgres');
    expect(await analytics.analyticsEvent({ namespace: 'host', task: 'reindex', value: 2 })).toBe(1);
    analytics.start();
    await ga.waitFor(() => ga.delivered().some((e) => e.name === 'task_event'));
    expect(ga.delivered().filter((e) => e.name === 'task_event').map((e) => [e.measurementId, e.params.task, e.params.value])).toEqual([
      [token.measurementId, 'reindex', 2],
    ]);
    await analytics.stop();
    await expect(servicesOf(analytics).store.ping()).rejects.toThrow();
  });
});

describe('stop()', () => {
  for (const thread of [false, true]) {
    it(`${thread ? 'with a thread of its own: ' : ''}writes what was reported just before it, then every call and route says "stopped" at once (503)`, async () => {
      const file = join(dir, `stop-${thread ? 'thread' : 'inline'}.db`);
      const analytics = await create({ database: file, thread });
      await addTestToken(servicesOf(analytics));
      // A cron job reports its task and the process stops at once: the report is queued in the background.
      expect(await analytics.trackTask('cron', 'nightly', async () => 3)).toBe(3);
      const second = analytics.analyticsEvent({ namespace: 'cron', task: 'second' });
      await analytics.stop();
      expect(await second).toBe(1);
      const reopened = await openTestStore({ sqliteFile: file });
      try {
        const tasks = (await outboxEvents(reopened)).map((row) => (JSON.parse(row.params) as { task: string }).task);
        expect(tasks).toEqual(['nightly', 'second']);
      } finally {
        await reopened.store.close();
      }

      // Nothing hangs and nothing is a 500: the store is closed, and says so.
      const within = <T>(promise: Promise<T>) =>
        Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('still waiting after 3 s')), 3_000))]);
      await expect(within(analytics.analyticsEvent({ namespace: 'cron', task: 'after' }))).rejects.toThrow(StoreUnavailableError);
      const answers = await within(
        Promise.all([
          analytics.app.request('/api/events', { method: 'POST', headers: { Authorization: `Bearer ${KEY}` }, body: JSON.stringify({ namespace: 'host', task: 'late' }) }),
          analytics.app.request('/collect', { method: 'POST', headers: { 'User-Agent': CHROME }, body: JSON.stringify({ path: '/late', title: 't', language: 'en' }) }),
          analytics.app.request('/healthz'),
        ]),
      );
      for (const res of answers) {
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toBe('5');
      }
      // A job run after the stop still runs and returns; its report is dropped with a line in the log, never thrown.
      expect(await within(analytics.trackTask('cron', 'after', () => 'done'))).toBe('done');
    });
  }
});

describe('the outbox before a stop', () => {
  it('waits only for what was queued before it was asked: a steady stream of events does not hold a stop up', async () => {
    const analytics = await create({ thread: true });
    const services = servicesOf(analytics);
    const token = await addTestToken(services);
    // A host that keeps reporting, an event every turn of the event loop: there is always something waiting.
    let producing = true;
    const queued: Array<Promise<void>> = [];
    const produce = async () => {
      for (let i = 0; producing; i += 1) {
        queued.push(services.outbox.add([{ tokenId: token.id, name: 'task_event', params: { namespace: 'stream', task: `t${i}` }, occurredAt: Date.now() }]));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    const producer = produce();
    try {
      await new Promise((resolve) => setTimeout(resolve, 50));
      const before = queued.length;
      const idle = await Promise.race([services.outbox.idle().then(() => 'idle'), new Promise((resolve) => setTimeout(() => resolve('still waiting after 3 s'), 3_000))]);
      expect(idle).toBe('idle');
      // Everything queued before it was asked is written by then.
      expect(await Promise.all(queued.slice(0, before))).toHaveLength(before);
      expect(producing).toBe(true);
    } finally {
      producing = false;
      await producer;
      await Promise.allSettled(queued);
    }
  });
});

describe('examples/host-app.ts', () => {
  it('runs: mounts the routes, reports its wrapped job, stops on SIGTERM', async () => {
    const dbPath = join(dir, 'example.db');
    const { store } = await openTestStore({ sqliteFile: dbPath });
    const now = (await store.install(TEAM_TOKEN, Date.now())).createdAt;
    await store.createToken(
      { name: 'Host property', measurementId: 'G-EXAMPLE', apiSecret: 's', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] },
      now,
    );
    await store.close();

    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/host-app.ts'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', PORT: '0', ANALYTICS_DB: dbPath, ANALYTICS_GA_URL: ga.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    try {
      await ga.waitFor(() => /listening on (\S+)/.test(output), 20_000);
      const url = /listening on (\S+)/.exec(output)?.[1] ?? '';
      expect(await (await fetch(url)).text()).toBe('Hello from the host app');
      expect((await fetch(`${url}/analytics/healthz`)).status).toBe(200);
      expect(await (await fetch(`${url}/jobs/purge`, { method: 'POST' })).json()).toEqual({ removed: 3 });

      await ga.waitFor(() => ga.delivered().length === 1);
      expect(ga.delivered()[0]?.params).toEqual({
        namespace: 'host.sessions',
        task: 'purge_expired',
        label: '',
        result: 'Success',
        value: 3,
      });
      expect(await validationMessages(ga)).toEqual([]);

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
