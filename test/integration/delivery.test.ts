import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.ts';
import { outbox, tokens } from '../../server/store/schema.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { ensureInstall } from '../../server/store/install.ts';
import { Relay } from '../../server/delivery/relay.ts';
import { addTestToken, fakeClock, makeTestApp, metricsText } from '../helpers/app.ts';
import { startCollector } from '../../harness/collector-process.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';

const CHROME =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const dir = mkdtempSync(join(tmpdir(), 'analytics-delivery-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

function setup(options: Parameters<typeof makeTestApp>[0] = {}, relayOptions: ConstructorParameters<typeof Relay>[1] = {}) {
  const made = makeTestApp({ dbPath: join(dir, `${Math.random().toString(36).slice(2)}.db`), ...options, config: { gaUrl: ga.url, ...options.config } });
  const relay = new Relay(made.services, { lingerMs: 20, random: () => 0, ...relayOptions });
  stopAfterTest(relay);
  const post = (path: string) =>
    made.app.request('/collect', {
      method: 'POST',
      body: JSON.stringify({ path, title: `Title of ${path}`, language: 'en' }),
      headers: { 'User-Agent': CHROME },
    });
  return { ...made, relay, post };
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

describe('delivery to GA', () => {
  it('delivers 100 hits to two tokens in at most 10 GA requests, each hit once', async () => {
    const { services, relay, post } = setup();
    const a = addTestToken(services);
    const b = addTestToken(services);
    const statuses = await Promise.all(paths(100).map(async (path) => (await post(path)).status));
    expect(new Set(statuses)).toEqual(new Set([204]));
    relay.start();
    await ga.waitFor(() => ga.delivered().length === 200);
    expect(ga.accepted().length).toBeLessThanOrEqual(10);
    expect(pathsByToken(ga)).toEqual({ [a.measurementId]: paths(100), [b.measurementId]: paths(100) });
    await ga.waitFor(() => services.outbox.depth() === 0); // GA's answer to the last request may still be on its way
  });

  it('holds events through a GA outage and delivers each once when GA is back', async () => {
    const { services, relay, post } = setup({}, { random: () => 0 });
    const token = addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    relay.start();
    for (const path of paths(30)) expect((await post(path)).status).toBe(204);
    await ga.waitFor(() => ga.requests.filter((r) => r.answer === 503).length >= 2);
    expect(ga.delivered()).toEqual([]);
    expect(services.outbox.depth()).toBe(30);
    const row = services.db.select().from(tokens).all().find((t) => t.id === token.id);
    expect(row?.lastError).toContain('GA answered 503');

    ga.setMode({ kind: 'ok' });
    await ga.waitFor(() => ga.delivered().length >= 30, 15_000);
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(30) });
  });

  it('holds a failing token back for the whole back-off, new events included, and the back-off grows', async () => {
    const { services, relay, post } = setup({}, { random: () => 0 });
    const token = addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    relay.start();
    // A hit every 100 ms for 1.4 s: fresh events keep arriving during the outage.
    for (const path of paths(14)) {
      await post(path);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    // Back-off 0.5 s, then 1 s, then 2 s: two or three tries in that time (a slow machine stretches the
    // loop), however many events arrived; without the hold it would be one a hit.
    expect(ga.requests.length).toBeGreaterThanOrEqual(1);
    expect(ga.requests.length).toBeLessThanOrEqual(3);
    ga.setMode({ kind: 'ok' });
    await ga.waitFor(() => ga.delivered().length === 14, 10_000);
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(14) });
  });

  it('retries after timeouts and connection resets', async () => {
    const { services, relay, post } = setup({}, { timeoutMs: 200 });
    const token = addTestToken(services);
    const pastTheHold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    ga.setMode({ kind: 'hang' });
    for (const path of paths(5)) await post(path);
    await relay.drain();
    ga.setMode({ kind: 'reset' });
    await pastTheHold(600); // back-off after a first failure: 0.5 s
    await relay.drain();
    expect(ga.requests.map((r) => r.answer)).toEqual(['hang', 'reset']);
    const rows = services.db.select().from(outbox).all();
    expect(rows).toHaveLength(5);
    for (const r of rows) {
      expect(r.attempts).toBe(2);
      expect(r.lastError).toMatch(/^network error/);
    }
    ga.setMode({ kind: 'ok' });
    await pastTheHold(1100); // after a second failure in a row: 1 s
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: paths(5) });
  });

  it('waits at least its own back-off even when GA says Retry-After: 0, and longer when GA asks', async () => {
    const { services, relay, post } = setup({}, { random: () => 0 });
    addTestToken(services);
    ga.setMode({ kind: 'status', status: 429, headers: { 'Retry-After': '0' } });
    await post('/busy');
    const before = Date.now();
    await relay.drain();
    await relay.drain(); // nothing is due again yet: no second request
    expect(ga.requests).toHaveLength(1);
    const [row] = services.db.select().from(outbox).all();
    expect(row?.nextAttemptAt).toBeGreaterThanOrEqual(before + 500);

    ga.setMode({ kind: 'status', status: 503, headers: { 'Retry-After': '120' } });
    await new Promise((resolve) => setTimeout(resolve, 600)); // past the first back-off
    const second = Date.now();
    await relay.drain();
    const [later] = services.db.select().from(outbox).all();
    expect(later?.nextAttemptAt).toBeGreaterThanOrEqual(second + 120_000);
  });

  it("lifts a token's hold when the admin retries its failed events", async () => {
    const { services, relay, post } = setup({}, { random: () => 0 });
    const token = addTestToken(services);
    ga.setMode({ kind: 'status', status: 400 });
    await post('/refused-first');
    await relay.drain();
    ga.setMode({ kind: 'status', status: 503, headers: { 'Retry-After': '600' } });
    await post('/while-down');
    await relay.drain(); // GA asked for ten minutes: the token is held
    ga.setMode({ kind: 'ok' });
    relay.start();
    expect(relay.retryFailed(token.id)).toBe(1);
    await ga.waitFor(() => ga.delivered().length === 2, 5_000);
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: ['/refused-first', '/while-down'] });
  });

  it('says at start which tokens it will not send to', async () => {
    const warnings: string[] = [];
    const { relay } = setup({ log: { info() {}, error() {}, warn: (m: string) => warnings.push(m) } });
    relay.start();
    expect(warnings).toEqual(['token 1 (Project team) skipped: placeholder measurement id']);
  });

  it('keeps events GA refuses with a 4xx as failed, with its answer, and retries them on request', async () => {
    const { services, relay, post } = setup();
    const token = addTestToken(services);
    ga.setMode({ kind: 'status', status: 403, body: 'api_secret invalid' });
    await post('/refused');
    await relay.drain();
    const [failed] = services.db.select().from(outbox).all();
    expect(failed).toMatchObject({ status: 'failed', lastError: 'GA answered 403: api_secret invalid' });
    expect(services.outbox.depth()).toBe(0);
    expect(ga.requests).toHaveLength(1);

    ga.setMode({ kind: 'ok' });
    expect(relay.retryFailed(token.id)).toBe(1);
    await relay.drain();
    expect(pathsByToken(ga)).toEqual({ [token.measurementId]: ['/refused'] });
  });

  it('never sends to the placeholder token or a token without a secret, and says so once', async () => {
    const warnings: string[] = [];
    const log = { info() {}, error() {}, warn: (m: string) => warnings.push(m) };
    const { services, relay } = setup({ log });
    const noSecret = addTestToken(services);
    // Events queued while the token still had a secret; it was cleared since.
    services.outbox.addNow([{ tokenId: noSecret.id, name: 'task_event', params: { task: 'x' }, occurredAt: services.clock() }]);
    services.tokens.update(noSecret.id, { apiSecret: '' });
    await relay.drain();
    await relay.drain();
    expect(ga.requests).toEqual([]);
    expect(warnings).toEqual([`token ${noSecret.id} (${noSecret.name}) skipped: no API secret`]);
    expect(services.outbox.depth()).toBe(1); // kept, for when a secret is set again
  });

  it('bounds the outbox: past the limit the oldest events are dropped and counted', async () => {
    const { app, services, post } = setup({ outboxMax: 10 });
    addTestToken(services);
    for (const path of paths(15)) await post(path);
    expect(services.outbox.depth()).toBe(10);
    const kept = services.db.select().from(outbox).all().map((r) => new URL(String(r.params.page_location)).pathname);
    expect(kept.sort()).toEqual(paths(15).slice(5).sort()); // paths(15) is sorted as text; the last five queued are /p10../p14
    const metrics = await metricsText(app);
    expect(metrics).toMatch(/^analytics_events_dropped_total\{reason="outbox-full"\} 5$/m);
  });

  it("gives up on events older than GA's 72-hour limit instead of sending them", async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 1));
    const { services, relay, post } = setup({ clock });
    addTestToken(services);
    ga.setMode({ kind: 'status', status: 503 });
    await post('/old');
    await relay.drain();
    clock.advance(73 * 3_600_000);
    ga.setMode({ kind: 'ok' });
    services.db.update(outbox).set({ nextAttemptAt: 0 }).run();
    await relay.drain();
    expect(ga.delivered()).toEqual([]);
    expect(services.db.select().from(outbox).all()).toMatchObject([{ status: 'failed', lastError: "older than GA's 72-hour limit" }]);
  });
});

describe('token changes while events wait or travel', () => {
  it('a token deleted while hits are being committed: the hits still get 204 and reach the other tokens', async () => {
    const { services } = setup();
    const kept = addTestToken(services);
    const deleted = addTestToken(services);
    const event = (tokenId: number) => ({ tokenId, name: 'page_view', params: { page_location: 'https://x.invalid/' }, occurredAt: services.clock() });
    const committed = services.outbox.add([event(kept.id), event(deleted.id)]);
    services.db.delete(tokens).where(eq(tokens.id, deleted.id)).run(); // before the group commit runs
    await expect(committed).resolves.toBeUndefined();
    expect(services.db.select().from(outbox).all().map((r) => r.tokenId)).toEqual([kept.id]);
    expect(services.outbox.depth()).toBe(1);
  });

  it('a token deleted while its request is in flight: no error, no second send of anything', async () => {
    const { services, relay, post } = setup();
    const kept = addTestToken(services);
    const deleted = addTestToken(services);
    for (const path of paths(3)) await post(path);
    ga.setMode({ kind: 'slow', ms: 300 });
    const draining = relay.drain();
    await ga.waitFor(() => ga.requests.length === 2);
    services.tokens.delete(deleted.id);
    await expect(draining).resolves.toBeUndefined();
    ga.setMode({ kind: 'ok' });
    await relay.drain();
    expect(ga.requests).toHaveLength(2);
    expect(pathsByToken(ga)[kept.measurementId]).toEqual(paths(3));
    expect(services.outbox.depth()).toBe(0);
  });

  it('a feature switched off after its events were queued: they are dropped, not sent, and a retry cannot bring them back', async () => {
    const { services, relay, post } = setup();
    const token = addTestToken(services);
    await post('/queued-before');
    services.outbox.addNow([{ tokenId: token.id, name: 'task_event', params: { namespace: 'n', task: 't' }, occurredAt: services.clock() }]);
    services.tokens.update(token.id, { sendPageViews: false });
    await relay.drain();
    expect(ga.delivered().map((e) => e.name)).toEqual(['task_event']);
    expect(services.db.select().from(outbox).all()).toEqual([]);
    expect(services.outbox.retryFailed(token.id)).toBe(0);
  });

  it('a retry leaves alone failed events GA would no longer take, and old failed events are pruned after a week', async () => {
    const clock = fakeClock(Date.UTC(2026, 10, 1));
    const { services } = setup({ clock });
    const token = addTestToken(services);
    const event = { tokenId: token.id, name: 'task_event', params: { task: 't' }, occurredAt: clock() };
    services.outbox.addNow([event]);
    const [row] = services.db.select().from(outbox).all();
    services.outbox.failed(token.id, [row?.id ?? 0], 'GA answered 400');
    clock.advance(73 * 3_600_000);
    expect(services.outbox.retryFailed(token.id)).toBe(0);
    expect(services.outbox.pruneFailed(clock())).toBe(0);
    clock.advance(7 * 24 * 3_600_000);
    expect(services.outbox.pruneFailed(clock())).toBe(1);
    expect(services.db.select().from(outbox).all()).toEqual([]);
  });
});

describe('durability across a crash', () => {
  it('loses nothing answered 204 when the collector is killed with SIGKILL while GA is down', async () => {
    const dbPath = join(dir, 'crash.db');
    const setupDb = openDatabase(dbPath);
    ensureInstall(setupDb, TEAM_TOKEN);
    const now = Date.now();
    for (const n of [1, 2]) {
      setupDb.insert(tokens).values({ name: `T${n}`, measurementId: `G-CRASH${n}`, apiSecret: `s${n}`, createdAt: now, updatedAt: now }).run();
    }
    setupDb.$client.close();

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
      await ga.waitFor(() => ga.delivered().length >= 80, 20_000);
      await new Promise((resolve) => setTimeout(resolve, 1500)); // anything extra (a duplicate) would show up now
      expect(pathsByToken(ga)).toEqual({ 'G-CRASH1': sent, 'G-CRASH2': sent });
    } finally {
      await second.stop();
    }
  });
});
