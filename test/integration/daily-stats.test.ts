import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../server/core/clock.ts';
import { DAY_MS, type DailyStats, type DailyStatsRun, type StatsSource } from '../../server/host-events/daily-stats.ts';
import type { EventParams } from '../../server/store/types.ts';
import { addTestToken, DIALECTS, fakeClock, makeTestApp, makeTestServices, outboxEvents, type TestDatabase, type TestServices } from '../helpers/app.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';
import { validationMessages } from '../../harness/ga-validation.ts';

const KEY = 'stats-events-key-0123';
const HOUR = 3_600_000;
const dir = mkdtempSync(join(tmpdir(), 'analytics-daily-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
let stops: Array<() => Promise<void>> = [];
beforeEach(async () => {
  ga = await startFakeGa();
});
afterEach(async () => {
  for (const stop of stops) await stop();
  stops = [];
  await ga.close();
});

/** Stops the services' schedule and relay, then closes their store, after the test. */
function stopAfterTest(services: TestServices): void {
  stops.push(async () => {
    await services.dailyStats.stop();
    await services.relay.stop();
    await services.store.close();
  });
}

/** The outbox's rows in the order they were queued, params read back from their JSON. */
async function queued(services: TestServices) {
  const rows = await outboxEvents(services);
  return rows.map((r) => ({ tokenId: r.token_id, name: r.name, params: JSON.parse(r.params) as EventParams, occurredAt: r.occurred_at }));
}

async function setup(stats?: StatsSource) {
  const made = await makeTestApp({ config: { gaUrl: ga.url, eventsKey: KEY, appVersion: '2.0.0' }, relay: { lingerMs: 10 }, dailyStats: { stats } });
  stopAfterTest(made.services);
  const putStats = (body: unknown) =>
    made.app.request('/api/stats', { method: 'PUT', body: JSON.stringify(body), headers: { Authorization: `Bearer ${KEY}` } });
  return { ...made, relay: made.services.relay, runner: made.services.dailyStats, putStats };
}

describe('a daily-stats run against GA', () => {
  it('sends the phone-in, the numbers of PUT /api/stats and one installed_app per app, to tokens with daily stats on', async () => {
    const { services, relay, runner, putStats } = await setup();
    const on = await addTestToken(services);
    const alsoOn = await addTestToken(services, { sendTaskEvents: false, sendPageViews: false });
    await addTestToken(services, { sendDailyStats: false });
    expect((await putStats({ users: 1500, tokens: 320, apps: ['forum', 'billing', 'calendar'] })).status).toBe(204);

    const run = await runner.runNow();
    expect(run).toMatchObject({ queued: 14, withNumbers: true });
    await relay.drain();

    const expected = [
      ['daily_stats', { label: 'existence', value: 1 }],
      ['daily_stats', { label: 'users', value: 1500 }],
      ['daily_stats', { label: 'tokens', value: 320 }],
      ['daily_stats', { label: 'apps', value: 3 }],
      ['installed_app', { label: 'forum', value: 1 }],
      ['installed_app', { label: 'billing', value: 1 }],
      ['installed_app', { label: 'calendar', value: 1 }],
    ];
    for (const token of [on, alsoOn]) {
      const events = ga.delivered().filter((e) => e.measurementId === token.measurementId);
      expect(events.map((e) => [e.name, e.params])).toEqual(expected);
      for (const event of events) {
        expect(event).toMatchObject({ clientId: services.identity.uuid, appVersion: '2.0.0', device: undefined });
        expect(event.timestampMicros).toBe(run.at * 1000);
      }
    }
    expect(new Set(ga.delivered().map((e) => e.measurementId))).toEqual(new Set([on.measurementId, alsoOn.measurementId]));
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('sends the phone-in alone when the host never gave numbers', async () => {
    const { services, relay, runner } = await setup();
    await addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().map((e) => [e.name, e.params])).toEqual([['daily_stats', { label: 'existence', value: 1 }]]);
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('takes the numbers from the stats callback in library use', async () => {
    const { services, relay, runner } = await setup(() => ({ users: 2, tokens: 1, apps: ['wiki'] }));
    await addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().map((e) => e.params.label)).toEqual(['existence', 'users', 'tokens', 'apps', 'wiki']);
  });

  it('keeps every request within 25 events for a host with many apps', async () => {
    const apps = Array.from({ length: 60 }, (_, i) => `app_${i}`);
    const { services, relay, runner } = await setup(() => ({ users: 1, tokens: 1, apps }));
    await addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().filter((e) => e.name === 'installed_app')).toHaveLength(60);
    expect(Math.max(...ga.accepted().map((r) => r.body?.events?.length ?? 0))).toBeLessThanOrEqual(25);
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('sends nothing, not one GA request, when analytics is disabled', async () => {
    const made = await makeTestApp({
      config: { gaUrl: ga.url, disabled: true },
      relay: { lingerMs: 10 },
      dailyStats: { stats: () => ({ users: 1, tokens: 1, apps: ['a'] }), startDelayMs: 0 },
    });
    stopAfterTest(made.services);
    await addTestToken(made.services);
    const { relay, dailyStats: runner } = made.services;
    runner.start();
    relay.start();
    await runner.runNow();
    await relay.drain();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await queued(made.services)).toEqual([]);
    expect(ga.requests).toEqual([]);
  });
});

describe.each(DIALECTS)('the daily schedule across restarts and processes (%s)', (dialect) => {
  let fileCounter = 0;
  /** Where the next test's data lives: a SQLite file, or a fresh PostgreSQL database. */
  const freshDatabase = (): TestDatabase => (dialect === 'sqlite' ? { sqliteFile: join(dir, `daily-${++fileCounter}.db`) } : 'postgres');
  /** The same data again, as a restart (or a second process) opens it. */
  const sameDatabase = (services: TestServices): TestDatabase => (dialect === 'sqlite' ? { sqliteFile: services.location } : { postgresUrl: services.location });

  /** Opens the store as a collector start would, on a clock of its own. */
  async function boot(database: TestDatabase, clock: Clock): Promise<{ services: TestServices; runner: DailyStats; close(): Promise<void> }> {
    const services = await makeTestServices({ database, clock, dailyStats: { startDelayMs: 0 } });
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await services.dailyStats.stop();
      await services.store.close();
    };
    stops.push(close);
    return { services, runner: services.dailyStats, close };
  }
  const phoneIns = async (services: TestServices) => (await queued(services)).filter((r) => r.params.label === 'existence').map((r) => r.occurredAt);

  it('neither repeats nor skips a day over restarts, and catches up once after a week off', async () => {
    const start = Date.UTC(2026, 2, 1, 8);
    const clock = fakeClock(start);

    const first = await boot(freshDatabase(), clock);
    await addTestToken(first.services);
    expect(await first.runner.runIfDue()).toMatchObject({ at: start, queued: 1 });
    await first.close();

    // Restarted the same day: nothing.
    clock.advance(6 * HOUR);
    const second = await boot(sameDatabase(first.services), clock);
    expect(await second.runner.lastRunAt()).toBe(start);
    expect(await second.runner.runIfDue()).toBeUndefined();
    expect(await second.runner.nextRunAt()).toBe(start + DAY_MS);
    // The next day, as scheduled.
    clock.set(start + DAY_MS);
    expect(await second.runner.runIfDue()).toMatchObject({ at: start + DAY_MS });
    await second.close();

    // Off for a week: once on return, and not again until a day later.
    clock.set(start + 8 * DAY_MS + 3 * HOUR);
    const third = await boot(sameDatabase(first.services), clock);
    expect(await third.runner.runIfDue()).toMatchObject({ at: start + 8 * DAY_MS + 3 * HOUR });
    expect(await third.runner.runIfDue()).toBeUndefined();
    clock.advance(DAY_MS - 1);
    expect(await third.runner.runIfDue()).toBeUndefined();
    expect(await phoneIns(third.services)).toEqual([start, start + DAY_MS, start + 8 * DAY_MS + 3 * HOUR]);
    await third.close();
  });

  it('runs at start-up when due, from its own timer', async () => {
    const clock = fakeClock(Date.UTC(2026, 2, 1));
    const booted = await boot(freshDatabase(), clock);
    await addTestToken(booted.services);
    booted.runner.start();
    await expect.poll(() => phoneIns(booted.services)).toEqual([clock()]);
    await booted.close();

    const again = await boot(sameDatabase(booted.services), clock);
    again.runner.start();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await again.runner.lastRunAt()).toBe(clock());
    expect(await phoneIns(again.services)).toHaveLength(1);
    await again.close();
  });

  it('runs once a day per install when several processes share the store and look at the same moment', async () => {
    const clock = fakeClock(Date.UTC(2026, 2, 1, 6));
    const first = await boot(freshDatabase(), clock);
    await addTestToken(first.services);
    const others: Array<Awaited<ReturnType<typeof boot>>> = [];
    for (let i = 0; i < 3; i++) others.push(await boot(sameDatabase(first.services), clock));
    const everyone = [first, ...others];
    // On PostgreSQL they look at once. SQLite connections of one Node thread cannot: a second BEGIN IMMEDIATE
    // would block the very thread that holds the write lock until the busy timeout, so they look in turn there
    // (real processes, each with its own thread, simply wait for the lock).
    let runs: Array<DailyStatsRun | undefined> = [];
    if (dialect === 'postgres') runs = await Promise.all(everyone.map((process) => process.runner.runIfDue()));
    else for (const process of everyone) runs.push(await process.runner.runIfDue());
    expect(runs.filter((run) => run !== undefined)).toHaveLength(1);
    expect(await phoneIns(first.services)).toEqual([clock()]);
    // A process that looks again later the same day finds it done.
    clock.advance(HOUR);
    expect(await others[0]?.runner.runIfDue()).toBeUndefined();
    expect(await phoneIns(first.services)).toHaveLength(1);
  });
});
