import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Clock } from '../../server/core/clock.ts';
import { DAY_MS, DailyStats, type StatsSource } from '../../server/host-events/daily-stats.ts';
import { outbox } from '../../server/store/schema.ts';
import { Relay } from '../../server/delivery/relay.ts';
import type { Services } from '../../server/services.ts';
import { addTestToken, fakeClock, makeTestApp, makeTestServices } from '../helpers/app.ts';
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

function setup(stats?: StatsSource) {
  const made = makeTestApp({ config: { gaUrl: ga.url, eventsKey: KEY, appVersion: '2.0.0' } });
  const relay = new Relay(made.services, { lingerMs: 10, random: () => 0 });
  const runner = new DailyStats(made.services, { stats });
  stops.push(() => runner.stop(), () => relay.stop());
  const putStats = (body: unknown) =>
    made.app.request('/api/stats', { method: 'PUT', body: JSON.stringify(body), headers: { Authorization: `Bearer ${KEY}` } });
  return { ...made, relay, runner, putStats };
}

describe('a daily-stats run against GA', () => {
  it('sends the phone-in, the numbers of PUT /api/stats and one installed_app per app, to tokens with daily stats on', async () => {
    const { services, relay, runner, putStats } = setup();
    const on = addTestToken(services);
    const alsoOn = addTestToken(services, { sendTaskEvents: false, sendPageViews: false });
    addTestToken(services, { sendDailyStats: false });
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
    const { services, relay, runner } = setup();
    addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().map((e) => [e.name, e.params])).toEqual([['daily_stats', { label: 'existence', value: 1 }]]);
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('takes the numbers from the stats callback in library use', async () => {
    const { services, relay, runner } = setup(() => ({ users: 2, tokens: 1, apps: ['wiki'] }));
    addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().map((e) => e.params.label)).toEqual(['existence', 'users', 'tokens', 'apps', 'wiki']);
  });

  it('keeps every request within 25 events for a host with many apps', async () => {
    const apps = Array.from({ length: 60 }, (_, i) => `app_${i}`);
    const { services, relay, runner } = setup(() => ({ users: 1, tokens: 1, apps }));
    addTestToken(services);
    await runner.runNow();
    await relay.drain();
    expect(ga.delivered().filter((e) => e.name === 'installed_app')).toHaveLength(60);
    expect(Math.max(...ga.accepted().map((r) => r.body?.events?.length ?? 0))).toBeLessThanOrEqual(25);
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('sends nothing, not one GA request, when analytics is disabled', async () => {
    const made = makeTestApp({ config: { gaUrl: ga.url, disabled: true } });
    addTestToken(made.services);
    const relay = new Relay(made.services, { lingerMs: 10 });
    const runner = new DailyStats(made.services, { stats: () => ({ users: 1, tokens: 1, apps: ['a'] }), startDelayMs: 0 });
    stops.push(() => runner.stop(), () => relay.stop());
    runner.start();
    relay.start();
    await runner.runNow();
    await relay.drain();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(made.services.db.select().from(outbox).all()).toEqual([]);
    expect(ga.requests).toEqual([]);
  });
});

describe('the daily schedule across restarts (a real SQLite file)', () => {
  /** Opens the file as a collector start would, on a clock of its own. */
  function boot(path: string, clock: Clock): { services: Services; runner: DailyStats; close(): Promise<void> } {
    const services = makeTestServices({ dbPath: path, clock });
    const runner = new DailyStats(services, { startDelayMs: 0 });
    return {
      services,
      runner,
      async close() {
        await runner.stop();
        services.db.$client.close();
      },
    };
  }
  const phoneIns = (services: Services) =>
    services.db.select().from(outbox).all().filter((r) => r.params.label === 'existence').map((r) => r.occurredAt);

  it('neither repeats nor skips a day over restarts, and catches up once after a week off', async () => {
    const path = join(dir, 'restarts.db');
    const start = Date.UTC(2026, 2, 1, 8);
    const clock = fakeClock(start);

    const first = boot(path, clock);
    addTestToken(first.services);
    expect(await first.runner.runIfDue()).toMatchObject({ at: start, queued: 1 });
    await first.close();

    // Restarted the same day: nothing.
    clock.advance(6 * HOUR);
    const second = boot(path, clock);
    expect(second.runner.lastRunAt()).toBe(start);
    expect(await second.runner.runIfDue()).toBeUndefined();
    expect(second.runner.nextRunAt()).toBe(start + DAY_MS);
    // The next day, as scheduled.
    clock.set(start + DAY_MS);
    expect(await second.runner.runIfDue()).toMatchObject({ at: start + DAY_MS });
    await second.close();

    // Off for a week: once on return, and not again until a day later.
    clock.set(start + 8 * DAY_MS + 3 * HOUR);
    const third = boot(path, clock);
    expect(await third.runner.runIfDue()).toMatchObject({ at: start + 8 * DAY_MS + 3 * HOUR });
    expect(await third.runner.runIfDue()).toBeUndefined();
    clock.advance(DAY_MS - 1);
    expect(await third.runner.runIfDue()).toBeUndefined();
    expect(phoneIns(third.services)).toEqual([start, start + DAY_MS, start + 8 * DAY_MS + 3 * HOUR]);
    await third.close();
  });

  it('runs at start-up when due, from its own timer', async () => {
    const path = join(dir, 'startup.db');
    const clock = fakeClock(Date.UTC(2026, 2, 1));
    const booted = boot(path, clock);
    addTestToken(booted.services);
    booted.runner.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(phoneIns(booted.services)).toEqual([clock()]);
    await booted.close();

    const again = boot(path, clock);
    again.runner.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(phoneIns(again.services)).toHaveLength(1);
    await again.close();
  });
});
