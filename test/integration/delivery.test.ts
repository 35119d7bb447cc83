import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RelayOptions } from '../../server/delivery/relay.ts';
import { startCollector } from '../../harness/collector-process.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { addTestToken, DIALECTS, fakeClock, makeTestApp, metricsText, openTestStore, outboxEvents, queueEvents, until, type TestAppOptions } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const dir = mkdtempSync(join(tmpdir(), 'analytics-delivery-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));


/** An app on `database` delivering to the fake GA; its relay and store are stopped after the test. */
async function setup(database: TestAppOptions['database'], options: TestAppOptions = {}, relay: RelayOptions = {}) {
  const made = await makeTestApp({ database, ...options, config: { gaUrl: ga.url, ...options.config }, relay: { lingerMs: 20, random: () => 0, ...relay } });
  const { services } = made;
  stopAfterTest({
    async stop() {
      await services.relay.stop();
      await services.store.close();
    },
  });
  const post = (path: string) =>
    made.app.request('/collect', {
      method: 'POST',
      body: JSON.stringify({ path, title: `Title of ${path}`, language: 'en' }),
      headers: { 'User-Agent': CHROME },
    });
  const rows = () => outboxEvents(services);
  return { ...made, relay: services.relay, post, rows };
}

/** The page paths GA received, per measurement id. */
function pathsByToken(fake: FakeGa): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const event of fake.delivered()) {
    if (event.name !== 'page_view') continue; // the daily phone-in may arrive too
    const path = new URL(String(event.params.page_location)).pathname;
    (out[event.measurementId] ??= []).push(path);
  }
  for (const list of Object.values(out)) list.sort();
  return out;
}

const paths = (n: number, prefix = '/p') => Array.from({ length: n }, (_, i) => `${prefix}${i}`).sort();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(DIALECTS)('delivery to GA, on %s', (dialect) => {
  it('delivers 100 hits to two tokens in at most 10 GA requests, each hit once', async () => {
    const { services, relay, post } = await setup(dialect);
    const a = await addTestToken(services);
    const b = await addTestToken(services);
    const statuses = await Promise.all(paths(100).map(async (path) => (await post(path)).status));
    expect(new Set(statuses)).toEqual(new Set([204]));
    relay.start();
    await ga.waitFor(() => ga.delivered().length === 200);
    expect(ga.accepted().length).toBeLessThanOrEqual(10);
    expect(pathsByToken(ga)).toEqual({ [a.measurementId]: paths(100), [b.measurementId]: paths(100) });
    await until(async () => (await services.outbox.depth()) === 0); // GA's answer to the last request may still be on its way
  });

  it('holds events through a GA outage and delivers each once when GA is back', async () => {
    const { services, relay, post } = await setup(dialect);
    const token = await addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    relay.start();
    for (const path of paths(30)) expect((await post(path)).status).toBe(204);
    await ga.waitFor(() => ga.requests.filter((r) => r.answer === 503).length >= 2);
    expect(ga.delivered()).toEqual([]);
    expect(await services.outbox.depth()).toBe(30);
    expect((await services.tokens.find(token.id))?.lastError).toContain('GA answered 503');

    ga.setMode({ kind: 'ok' });
    await ga.waitFor(() => ga.delivered().length >= 30, 15_000);
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(30) });
  });

  it('holds a failing token back for the whole back-off, new events included, and the back-off grows', async () => {
    const { services, relay, post } = await setup(dialect);
    const token = await addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    relay.start();
    // A hit every 100 ms for 1.4 s: fresh events keep arriving during the outage.
    for (const path of paths(14)) {
      await post(path);
      await sleep(100);
    }
    // Back-off 0.5 s, then 1 s, then 2 s: two or three tries in that time (a slow machine stretches the
    // loop), however many events arrived; without the hold it would be one a hit.
    expect(ga.requests.length).toBeGreaterThanOrEqual(1);
    expect(ga.requests.length).toBeLessThanOrEqual(3);
    expect((await services.tokens.find(token.id))?.heldUntil).toBeGreaterThan(Date.now() - 2_000);
    ga.setMode({ kind: 'ok' });
    await ga.waitFor(() => ga.delivered().length === 14, 10_000);
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(14) });
  });

  it('retries after timeouts and connection resets', async () => {
    const { services, relay, post, rows } = await setup(dialect, {}, { timeoutMs: 200 });
    const token = await addTestToken(services);
    ga.setMode({ kind: 'hang' });
    for (const path of paths(5)) await post(path);
    await relay.drain();
    ga.setMode({ kind: 'reset' });
    await sleep(600); // back-off after a first failure: 0.5 s
    await relay.drain();
    expect(ga.requests.map((r) => r.answer)).toEqual(['hang', 'reset']);
    const waiting = await rows();
    expect(waiting).toHaveLength(5);
    for (const r of waiting) {
      expect(r.attempts).toBe(2);
      expect(r.last_error).toMatch(/^network error/);
    }
    ga.setMode({ kind: 'ok' });
    await sleep(1100); // after a second failure in a row: 1 s
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(5) });
  });

  it('waits at least its own back-off even when GA says Retry-After: 0, and longer when GA asks', async () => {
    const { services, relay, post, rows } = await setup(dialect);
    await addTestToken(services);
    ga.setMode({ kind: 'status', status: 429, headers: { 'Retry-After': '0' } });
    await post('/busy');
    const before = Date.now();
    await relay.drain();
    await relay.drain(); // nothing is due again yet: no second request
    expect(ga.requests).toHaveLength(1);
    expect(Number((await rows())[0]?.next_attempt_at)).toBeGreaterThanOrEqual(before + 500);

    ga.setMode({ kind: 'status', status: 503, headers: { 'Retry-After': '120' } });
    await sleep(600); // past the first back-off
    const second = Date.now();
    await relay.drain();
    expect(Number((await rows())[0]?.next_attempt_at)).toBeGreaterThanOrEqual(second + 120_000);
  });

  it("lifts a token's hold when the admin retries its failed events", async () => {
    const { services, relay, post } = await setup(dialect);
    const token = await addTestToken(services);
    ga.setMode({ kind: 'status', status: 400 });
    await post('/refused-first');
    await relay.drain();
    ga.setMode({ kind: 'status', status: 503, headers: { 'Retry-After': '600' } });
    await post('/while-down');
    await relay.drain(); // GA asked for ten minutes: the token is held
    ga.setMode({ kind: 'ok' });
    relay.start();
    expect(await relay.retryFailed(token.id)).toBe(1);
    await ga.waitFor(() => ga.delivered().length === 2, 5_000);
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: ['/refused-first', '/while-down'] });
  });

  it('says at start which tokens it will not send to', async () => {
    const warnings: string[] = [];
    const { relay } = await setup(dialect, { log: { info() {}, error() {}, warn: (m: string) => warnings.push(m) } });
    relay.start();
    await until(() => warnings.length > 0);
    expect(warnings).toEqual(['token 1 (Project team) skipped: placeholder measurement id']);
  });

  it('keeps events GA refuses with a 4xx as failed, with its answer, and retries them on request', async () => {
    const { services, relay, post, rows } = await setup(dialect);
    const token = await addTestToken(services);
    ga.setMode({ kind: 'status', status: 403, body: 'api_secret invalid' });
    await post('/refused');
    await relay.drain();
    expect(await rows()).toMatchObject([{ status: 'failed', last_error: 'GA answered 403: api_secret invalid' }]);
    expect(await services.outbox.depth()).toBe(0);
    expect(ga.requests).toHaveLength(1);

    ga.setMode({ kind: 'ok' });
    expect(await relay.retryFailed(token.id)).toBe(1);
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: ['/refused'] });
  });

  it('never sends to the placeholder token or a token without a secret, and says so once', async () => {
    const warnings: string[] = [];
    const log = { info() {}, error() {}, warn: (m: string) => warnings.push(m) };
    const { services, relay } = await setup(dialect, { log });
    const noSecret = await addTestToken(services);
    // Events queued while the token still had a secret; it was cleared since.
    await queueEvents(services, [{ tokenId: noSecret.id, name: 'task_event', params: { task: 'x' } }]);
    await services.tokens.update(noSecret.id, { apiSecret: '' });
    await relay.drain();
    await relay.drain();
    expect(ga.requests).toEqual([]);
    expect(warnings).toEqual(['token 1 (Project team) skipped: placeholder measurement id', `token ${noSecret.id} (${noSecret.name}) skipped: no API secret`]);
    expect(await services.outbox.depth()).toBe(1); // kept, for when a secret is set again
  });

  it('bounds the outbox: past the limit the oldest page views are dropped and counted', async () => {
    const { app, services, post, rows } = await setup(dialect, { outboxMax: 10 });
    await addTestToken(services);
    for (const path of paths(15)) {
      await post(path);
      await services.outbox.settled();
    }
    await services.outbox.trim(); // what the next write would do; the bound is kept within a second
    expect(await services.outbox.depth()).toBe(10);
    const kept = (await rows()).map((r) => new URL(String((JSON.parse(r.params) as { page_location: string }).page_location)).pathname);
    expect(kept.sort()).toEqual(paths(15).slice(5).sort()); // paths(15) is sorted as text; the last five queued are /p10../p14
    expect(await metricsText(app)).toMatch(/^analytics_events_dropped_total\{reason="outbox-full",feature="pageViews"\} 5$/m);
  });

  it("gives up on events older than GA's 72-hour limit instead of sending them", async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 1));
    const { services, relay, post, rows } = await setup(dialect, { clock });
    await addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    await post('/old');
    await relay.drain();
    clock.advance(73 * 3_600_000);
    ga.setMode({ kind: 'ok' });
    await services.sql('UPDATE outbox SET next_attempt_at = 0');
    await services.sql('UPDATE tokens SET held_until = 0');
    await relay.drain();
    expect(ga.delivered()).toEqual([]);
    expect(await rows()).toMatchObject([{ status: 'failed', last_error: "older than GA's 72-hour limit" }]);
  });

  it('a token deleted while hits are being committed: the hits still get 204 and reach the other tokens', async () => {
    const { services, rows } = await setup(dialect);
    const kept = await addTestToken(services);
    const deleted = await addTestToken(services);
    const event = (tokenId: number) => ({ tokenId, name: 'page_view', params: { page_location: 'https://x.invalid/' }, occurredAt: services.clock() });
    const committed = services.outbox.add([event(kept.id), event(deleted.id)]);
    await services.store.deleteToken(deleted.id); // before the group commit runs
    await expect(committed).resolves.toBeUndefined();
    expect((await rows()).map((r) => Number(r.token_id))).toEqual([kept.id]);
    expect(await services.outbox.depth()).toBe(1);
  });

  it('a token deleted while its request is in flight: no error, no second send of anything', async () => {
    const { services, relay, post } = await setup(dialect);
    const kept = await addTestToken(services);
    const deleted = await addTestToken(services);
    for (const path of paths(3)) await post(path);
    ga.setMode({ kind: 'slow', ms: 300 });
    const draining = relay.drain();
    await ga.waitFor(() => ga.requests.length === 2);
    await services.tokens.delete(deleted.id);
    await expect(draining).resolves.toBeUndefined();
    ga.setMode({ kind: 'ok' });
    await relay.drain();
    expect(ga.requests).toHaveLength(2);
    expect(pathsByToken(ga)[kept.measurementId]).toEqual(paths(3));
    expect(await services.outbox.depth()).toBe(0);
  });

  it('a feature switched off after its events were queued: they are dropped, not sent, and a retry cannot bring them back', async () => {
    const { app, services, relay, post, rows } = await setup(dialect);
    const token = await addTestToken(services);
    await post('/queued-before');
    await queueEvents(services, [{ tokenId: token.id, name: 'task_event', params: { namespace: 'n', task: 't' } }]);
    await services.tokens.update(token.id, { sendPageViews: false });
    await relay.drain();
    expect(ga.delivered().map((e) => e.name)).toEqual(['task_event']);
    expect(await rows()).toEqual([]);
    expect(await relay.retryFailed(token.id)).toBe(0);
    expect(await metricsText(app)).toMatch(/^analytics_events_dropped_total\{reason="switched-off",feature="pageViews"\} 1$/m);
  });

  it('a retry leaves alone failed events GA would no longer take, and old failed events are pruned after a week', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 1));
    const { services, relay, rows } = await setup(dialect, { clock });
    const token = await addTestToken(services);
    ga.setMode({ kind: 'status', status: 400 });
    await queueEvents(services, [{ tokenId: token.id, name: 'task_event', params: { task: 't' } }]);
    await relay.drain();
    expect(await rows()).toMatchObject([{ status: 'failed' }]);
    clock.advance(73 * 3_600_000);
    expect(await relay.retryFailed(token.id)).toBe(0);
    expect(await services.store.pruneFailed(clock() - 7 * 24 * 3_600_000, 100_000)).toBe(0);
    clock.advance(7 * 24 * 3_600_000);
    expect(await services.store.pruneFailed(clock() - 7 * 24 * 3_600_000, 100_000)).toBe(1);
    expect(await rows()).toEqual([]);
  });
});

describe('durability across a crash', () => {
  it('loses nothing answered 204 when the collector is killed with SIGKILL while GA is down', async () => {
    const dbPath = join(dir, 'crash.db');
    const { store } = await openTestStore({ sqliteFile: dbPath });
    await store.install(TEAM_TOKEN, Date.now());
    for (const n of [1, 2]) {
      await store.createToken(
        { name: `T${n}`, measurementId: `G-CRASH${n}`, apiSecret: `s${n}`, sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] },
        Date.now(),
      );
    }
    await store.close();

    ga.setMode({ kind: 'status', status: 503 });
    const env = { ANALYTICS_DB: dbPath, ANALYTICS_GA_URL: ga.url };
    const first = await startCollector(env);
    const sent = paths(40, '/crash');
    for (const path of sent) {
      const res = await fetch(`${first.url}/collect`, {
        method: 'POST',
        body: JSON.stringify({ path, title: 't', language: 'en' }),
        headers: { 'Content-Type': 'text/plain', 'User-Agent': CHROME },
      });
      expect(res.status).toBe(204);
    }
    expect(await first.stop('SIGKILL')).toBeNull();
    expect(ga.delivered()).toEqual([]);

    ga.setMode({ kind: 'ok' });
    const second = await startCollector(env);
    try {
      // The killed collector's claims (if any) run out within the lease; then everything goes once.
      await ga.waitFor(() => ga.delivered().length >= 80, 45_000);
      await sleep(1500); // anything extra (a duplicate) would show up now
      expect(pathsByToken(ga)).toEqual({ 'G-CRASH1': sent, 'G-CRASH2': sent });
    } finally {
      await second.stop();
    }
    // Room for the wait above: a lease the killed collector held runs 30 s, and on a loaded machine the 503s before
    // the kill leave the tokens held by back-off for several seconds more.
  }, 60_000);
});
