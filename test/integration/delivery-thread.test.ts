import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { silentLogger, type Logger } from '../../server/core/log.ts';
import { createAnalytics, type Analytics } from '../../server/index.ts';
import { servicesOf } from '../../server/services.ts';
import { DatabaseError } from '../../server/store/errors.ts';
import { recordingLogger } from '../helpers/admin.ts';
import { addTestToken, METRICS_TOKEN, until } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const dir = mkdtempSync(join(tmpdir(), 'analytics-thread-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));
let files = 0;

/** Analytics as `npm start` runs it: the store and the relay in a delivery thread of their own. */
async function threaded(log: Logger = silentLogger): Promise<Analytics> {
  const analytics = await createAnalytics({
    database: join(dir, `thread-${++files}.db`),
    thread: true,
    env: { ANALYTICS_GA_URL: ga.url, ANALYTICS_METRICS_TOKEN: METRICS_TOKEN },
    log,
    relay: { lingerMs: 10 },
    dailyStatsStartDelayMs: 3_600_000,
  });
  return stopAfterTest(analytics);
}

function post(analytics: Analytics, path: string): Promise<Response> {
  return Promise.resolve(
    analytics.app.request('/collect', {
      method: 'POST',
      body: JSON.stringify({ path, title: 'Page', language: 'en' }),
      headers: { 'Content-Type': 'text/plain;charset=UTF-8', 'User-Agent': CHROME },
    }),
  );
}

const deliveredPaths = () => new Set(ga.delivered().map((e) => String(e.params.page_location ?? '')).map((url) => new URL(url).pathname));

describe('the delivery thread', () => {
  it('dying under load loses no hit answered 204: the others get a 503 with Retry-After, and it comes back with its relay', async () => {
    const analytics = await threaded();
    const services = servicesOf(analytics);
    const thread = services.thread;
    if (!thread) throw new Error('no delivery thread');
    await addTestToken(services);
    analytics.start();

    // Hits keep coming while the thread is stopped mid-stream.
    const answers: Array<Promise<{ path: string; res: Response }>> = [];
    for (let i = 0; i < 300; i++) {
      const path = `/page-${i}`;
      answers.push(post(analytics, path).then((res) => ({ path, res })));
      if (i === 150) await thread.crashForTest();
      if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    const settled = await Promise.all(answers);
    const accepted = settled.filter((a) => a.res.status === 204).map((a) => a.path);
    const refused = settled.filter((a) => a.res.status !== 204);
    expect(accepted.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0); // the crash did land while hits were in flight
    for (const { res } of refused) {
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('Retry-After'))).toBeGreaterThan(0);
    }

    // The thread is started again, by itself, and its relay delivers every hit that was answered 204.
    await until(async () => (await analytics.app.request('/healthz')).status === 200, 15_000);
    await ga.waitFor(() => accepted.every((path) => deliveredPaths().has(path)), 15_000);

    // New hits are taken and delivered as before.
    expect((await post(analytics, '/after-the-restart')).status).toBe(204);
    await ga.waitFor(() => deliveredPaths().has('/after-the-restart'), 10_000);
  });

  it('counts at /metrics what it does once: events queued and waiting, then delivered', async () => {
    const analytics = await threaded();
    const services = servicesOf(analytics);
    await addTestToken(services);
    await addTestToken(services);
    for (let i = 0; i < 3; i++) expect((await post(analytics, `/counted-${i}`)).status).toBe(204);
    const metric = async (name: string) => {
      const res = await analytics.app.request('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      const text = await res.text();
      return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'gm'))].reduce((sum, m) => sum + Number(m[1]), 0);
    };
    expect(await metric('analytics_outbox_depth')).toBe(6);
    expect(await metric('analytics_events_queued_total')).toBe(6);
    analytics.start();
    await ga.waitFor(() => ga.delivered().length === 6);
    await until(async () => (await metric('analytics_outbox_depth')) === 0);
    expect(await metric('analytics_events_delivered_total')).toBe(6);
    expect(await metric('analytics_events_queued_total')).toBe(6);
  });

  it("dying in the relay's thread, mid-request, loses no event: hits are still taken, and it is started again and takes its tokens back at once", async () => {
    const log = recordingLogger();
    const analytics = await threaded(log);
    const services = servicesOf(analytics);
    const thread = services.thread;
    if (!thread) throw new Error('no delivery thread');
    await addTestToken(services);
    // GA answers slowly: the relay holds the token's lease, with requests in flight, when its thread dies.
    ga.setMode({ kind: 'slow', ms: 400 });
    for (let i = 0; i < 60; i++) expect((await post(analytics, `/before-${i}`)).status).toBe(204);
    analytics.start();
    await ga.waitFor(() => ga.requests.length > 0, 10_000);
    await thread.crashRelayForTest();

    // The hits do not wait for the relay: they are taken while its thread is down.
    for (let i = 0; i < 60; i++) expect((await post(analytics, `/during-${i}`)).status).toBe(204);
    ga.setMode({ kind: 'ok' });

    // Started again under the same owner, it ends the dead thread's lease at once (the lease is 30 s) and delivers
    // every event; what GA took before the crash but was not settled may come twice, never not at all.
    const expected = [...Array.from({ length: 60 }, (_, i) => `/before-${i}`), ...Array.from({ length: 60 }, (_, i) => `/during-${i}`)];
    await ga.waitFor(() => expected.every((path) => deliveredPaths().has(path)), 10_000);
    expect(log.lines.some((line) => line.includes('the relay thread stopped; it is being started again'))).toBe(true);
    expect((await post(analytics, '/after-the-restart')).status).toBe(204);
    await ga.waitFor(() => deliveredPaths().has('/after-the-restart'), 10_000);
  });

  it('over a database in memory (one connection\'s alone), delivers from the delivery thread itself', async () => {
    const analytics = stopAfterTest(
      await createAnalytics({
        database: ':memory:',
        thread: true,
        env: { ANALYTICS_GA_URL: ga.url, ANALYTICS_METRICS_TOKEN: METRICS_TOKEN },
        log: silentLogger,
        relay: { lingerMs: 10 },
        dailyStatsStartDelayMs: 3_600_000,
      }),
    );
    await addTestToken(servicesOf(analytics));
    analytics.start();
    for (let i = 0; i < 5; i++) expect((await post(analytics, `/in-memory-${i}`)).status).toBe(204);
    await ga.waitFor(() => [0, 1, 2, 3, 4].every((i) => deliveredPaths().has(`/in-memory-${i}`)), 10_000);
  });

  it('keeps being started again while it keeps dying, and answers 503 in between, never hanging', async () => {
    const analytics = await threaded();
    const services = servicesOf(analytics);
    const thread = services.thread;
    if (!thread) throw new Error('no delivery thread');
    await addTestToken(services);
    for (let round = 0; round < 3; round++) {
      await thread.crashForTest();
      const res = await post(analytics, `/during-${round}`);
      expect([204, 503]).toContain(res.status);
      await until(async () => (await post(analytics, `/after-${round}`)).status === 204, 15_000);
    }
    analytics.start();
    await ga.waitFor(() => [0, 1, 2].every((round) => deliveredPaths().has(`/after-${round}`)), 10_000);
  });
});

/** A server on 127.0.0.1 that answers PostgreSQL's start-up with a message pg cannot parse (another service on the port). */
async function notPostgres(): Promise<{ server: Server; port: number; connections: () => number }> {
  let connections = 0;
  const server = createServer((socket) => {
    connections += 1;
    socket.on('error', () => undefined);
    // An authentication message of a kind that does not exist: pg's parser throws on it.
    socket.once('data', () => socket.write(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 99])));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stopAfterTest({ stop: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return { server, port: (server.address() as { port: number }).port, connections: () => connections };
}

describe('a delivery thread that cannot open its store', () => {
  it('fails the open in one line without the password, and is not started again in the background', async () => {
    const { port, connections } = await notPostgres();
    const log = recordingLogger();
    const error: unknown = await createAnalytics({
      database: `postgres://analytics:hunter2-secret@127.0.0.1:${port}/analytics`,
      thread: true,
      env: {},
      log,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    const message = (error as Error).message;
    expect(message).toMatch(new RegExp(`^cannot use the database PostgreSQL at 127\\.0\\.0\\.1:${port}/analytics: `));
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain('\n');
    // Past the first two restart delays: nobody connects again, nothing more is said.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(connections()).toBe(1);
    expect(log.lines.join('\n')).not.toContain('hunter2');
    expect(log.lines.filter((line) => line.includes('started again'))).toEqual([]);
  });
});
