import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ZodError } from 'zod';
import {
  DAY_MS,
  DailyStats,
  dailyStatsEvents,
  isDailyRunDue,
  parseHostStats,
  saveHostStats,
  START_DELAY_MS,
  type StatsSource,
} from '../../server/host-events/daily-stats.ts';
import type { Logger } from '../../server/core/log.ts';
import type { EventParams } from '../../server/store/types.ts';
import { addTestToken, makeTestServices, outboxEvents, type TestServices } from '../helpers/app.ts';

const HOUR = 3_600_000;
const START = Date.UTC(2026, 0, 1, 9);

describe('dailyStatsEvents', () => {
  it('is the phone-in alone when the host gave no numbers (never zeros)', () => {
    expect(dailyStatsEvents(undefined)).toEqual([{ name: 'daily_stats', params: { label: 'existence', value: 1 } }]);
  });

  it('adds users, tokens, the number of apps and one installed_app per app', () => {
    expect(dailyStatsEvents({ users: 120, tokens: 45, apps: ['forum', 'billing'] })).toEqual([
      { name: 'daily_stats', params: { label: 'existence', value: 1 } },
      { name: 'daily_stats', params: { label: 'users', value: 120 } },
      { name: 'daily_stats', params: { label: 'tokens', value: 45 } },
      { name: 'daily_stats', params: { label: 'apps', value: 2 } },
      { name: 'installed_app', params: { label: 'forum', value: 1 } },
      { name: 'installed_app', params: { label: 'billing', value: 1 } },
    ]);
  });
});

describe('parseHostStats', () => {
  it('trims app names, lists each once and cuts long ones at 100 characters', () => {
    expect(parseHostStats({ users: 3, tokens: 0, apps: [' forum ', 'forum', 'x'.repeat(120)] })).toEqual({
      users: 3,
      tokens: 0,
      apps: ['forum', 'x'.repeat(100)],
    });
  });

  it.each([
    [{ users: -1, tokens: 0, apps: [] }],
    [{ users: 1.5, tokens: 0, apps: [] }],
    [{ users: 1, tokens: '2', apps: [] }],
    [{ users: 1, tokens: 2 }],
    [{ users: 1, tokens: 2, apps: 'forum' }],
    [{ users: 1, tokens: 2, apps: [3] }],
    [null],
  ])('refuses the shape %o', (input) => {
    expect(() => parseHostStats(input)).toThrow(ZodError);
  });

  it('refuses an unknown field, unless told to ignore it (what a stats callback returns)', () => {
    const input = { users: 1, tokens: 2, apps: [], extra: 5 };
    expect(() => parseHostStats(input)).toThrow(/extra/);
    expect(parseHostStats(input, { ignoreUnknown: true })).toEqual({ users: 1, tokens: 2, apps: [] });
  });

  it('refuses a blank app name or one with control characters', () => {
    expect(() => parseHostStats({ users: 1, tokens: 1, apps: ['  '] })).toThrow(/must not be empty/);
    expect(() => parseHostStats({ users: 1, tokens: 1, apps: ['a\tb'] })).toThrow(/must not contain control characters/);
    expect(() => parseHostStats({ users: 1, tokens: 1, apps: ['a\tb'] }, { ignoreUnknown: true })).toThrow(/must not contain control characters/);
  });
});

describe('isDailyRunDue', () => {
  it('is due before the first run and a day after the last one, not before', () => {
    expect(isDailyRunDue(null, START)).toBe(true);
    expect(isDailyRunDue(START, START + DAY_MS - 1)).toBe(false);
    expect(isDailyRunDue(START, START + DAY_MS)).toBe(true);
    expect(isDailyRunDue(START, START + 7 * DAY_MS)).toBe(true);
  });

  it('is not blocked for good by a last run in the future (the clock was set back)', () => {
    expect(isDailyRunDue(START, START - HOUR)).toBe(false);
    expect(isDailyRunDue(START + 2 * DAY_MS, START)).toBe(true);
  });
});

describe('the daily schedule', () => {
  let runners: DailyStats[] = [];
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    vi.setSystemTime(START);
  });
  afterEach(async () => {
    await Promise.all(runners.map((r) => r.stop()));
    runners = [];
    vi.useRealTimers();
  });

  async function setup(options: { stats?: StatsSource; disabled?: boolean; log?: Logger; tokens?: number } = {}) {
    const services = await makeTestServices({ clock: () => Date.now(), config: { disabled: options.disabled ?? false }, log: options.log });
    for (let i = 0; i < (options.tokens ?? 1); i++) await addTestToken(services);
    const runner = new DailyStats(services, { stats: options.stats, startDelayMs: 0 });
    runners.push(runner);
    return { services, runner };
  }
  /** The outbox's rows in the order they were queued, params read back from their JSON. */
  async function rows(services: TestServices) {
    const found = await outboxEvents(services);
    return found.map((r) => ({ tokenId: r.token_id, name: r.name, params: JSON.parse(r.params) as EventParams, occurredAt: r.occurred_at }));
  }
  const phoneIns = async (services: TestServices) => (await rows(services)).filter((r) => r.params.label === 'existence');

  it('runs at start, then at most once a day however often it looks', async () => {
    const { services, runner } = await setup();
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    expect(await phoneIns(services)).toHaveLength(1);
    expect(await runner.lastRunAt()).toBe(START);

    await vi.advanceTimersByTimeAsync(DAY_MS - HOUR);
    expect(await phoneIns(services)).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(await phoneIns(services)).toHaveLength(2);

    await vi.advanceTimersByTimeAsync(8 * DAY_MS);
    expect(await phoneIns(services)).toHaveLength(10);
    expect((await phoneIns(services)).map((r) => r.occurredAt)).toEqual(Array.from({ length: 10 }, (_, i) => START + i * DAY_MS));
  });

  it('first looks a minute after start, so numbers the host sends as it starts make the first run', async () => {
    const { services } = await setup();
    const runner = new DailyStats(services);
    runners.push(runner);
    runner.start();
    await vi.advanceTimersByTimeAsync(START_DELAY_MS - 1);
    expect(await phoneIns(services)).toHaveLength(0);
    await saveHostStats(services, { users: 4, tokens: 2, apps: [] });
    await vi.advanceTimersByTimeAsync(1);
    expect((await rows(services)).map((r) => r.params.label)).toEqual(['existence', 'users', 'tokens', 'apps']);
  });

  it('catches up once, not seven times, after a week switched off', async () => {
    const { services, runner } = await setup();
    await runner.runIfDue();
    await runner.stop();

    vi.setSystemTime(START + 7 * DAY_MS + 5 * HOUR);
    const again = new DailyStats(services, { startDelayMs: 0 });
    runners.push(again);
    again.start();
    await vi.advanceTimersByTimeAsync(HOUR);
    expect((await phoneIns(services)).map((r) => r.occurredAt)).toEqual([START, START + 7 * DAY_MS + 5 * HOUR]);
    expect(await again.nextRunAt()).toBe(START + 8 * DAY_MS + 5 * HOUR);

    await vi.advanceTimersByTimeAsync(DAY_MS - HOUR);
    expect(await phoneIns(services)).toHaveLength(3);
  });

  it('notices a day passing even when the clock jumps (a suspended machine)', async () => {
    const { services, runner } = await setup();
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    // Date jumps two days while no timer fired; the next hourly look finds the run due.
    vi.setSystemTime(Date.now() + 2 * DAY_MS);
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(await phoneIns(services)).toHaveLength(2);
  });

  it('sends the numbers from the stats callback', async () => {
    const { services, runner } = await setup({ stats: async () => ({ users: 9, tokens: 4, apps: ['forum'] }) });
    const run = await runner.runIfDue();
    expect(run).toEqual({ at: START, queued: 5, withNumbers: true });
    expect((await rows(services)).map((r) => [r.name, r.params.label, r.params.value])).toEqual([
      ['daily_stats', 'existence', 1],
      ['daily_stats', 'users', 9],
      ['daily_stats', 'tokens', 4],
      ['daily_stats', 'apps', 1],
      ['installed_app', 'forum', 1],
    ]);
  });

  it('uses the latest stored numbers (PUT /api/stats) without a callback', async () => {
    const { services, runner } = await setup();
    await saveHostStats(services, { users: 1, tokens: 1, apps: ['old'] });
    await saveHostStats(services, { users: 2, tokens: 3, apps: [] });
    await runner.runIfDue();
    expect((await rows(services)).map((r) => r.params)).toEqual([
      { label: 'existence', value: 1 },
      { label: 'users', value: 2 },
      { label: 'tokens', value: 3 },
      { label: 'apps', value: 0 },
    ]);
  });

  it('still sends the phone-in when the callback fails, has no numbers or returns nonsense', async () => {
    const warnings: string[] = [];
    const log: Logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
    const answers: Array<() => unknown> = [
      () => {
        throw new Error('database busy');
      },
      () => undefined,
      () => ({ users: -3, tokens: 1, apps: [] }),
    ];
    let day = 0;
    const { services, runner } = await setup({ log, stats: () => answers[day]?.() as ReturnType<StatsSource> });
    for (; day < answers.length; day++) {
      const run = await runner.runIfDue();
      expect(run).toMatchObject({ queued: 1, withNumbers: false });
      vi.setSystemTime(Date.now() + DAY_MS);
    }
    expect((await rows(services)).map((r) => r.params.label)).toEqual(['existence', 'existence', 'existence']);
    expect(warnings).toEqual([
      'daily stats: the stats callback failed, sending the phone-in only (database busy)',
      'daily stats: invalid numbers, sending the phone-in only (users: Too small: expected number to be >=0)',
    ]);
  });

  it('sends the phone-in without numbers when the callback never answers, and stays usable', async () => {
    const warnings: string[] = [];
    const services = await makeTestServices({ clock: () => Date.now(), log: { info() {}, warn: (m) => warnings.push(m), error() {} } });
    await addTestToken(services);
    const runner = new DailyStats(services, { stats: () => new Promise<never>(() => {}), startDelayMs: 0, statsTimeoutMs: 5_000 });
    runners.push(runner);
    const run = runner.runNow();
    await vi.advanceTimersByTimeAsync(5_000);
    await expect(run).resolves.toMatchObject({ queued: 1, withNumbers: false });
    expect(warnings).toEqual(['daily stats: the stats callback failed, sending the phone-in only (the stats callback did not answer in time)']);
    await runner.stop(); // does not hang on the stuck callback
  });

  it('sends to every token with daily stats on and to no other', async () => {
    const { services, runner } = await setup({ tokens: 0, stats: () => ({ users: 1, tokens: 1, apps: [] }) });
    const on = await addTestToken(services);
    await addTestToken(services, { sendDailyStats: false });
    const run = await runner.runIfDue();
    expect(run?.queued).toBe(4);
    expect(new Set((await rows(services)).map((r) => r.tokenId))).toEqual(new Set([on.id]));
  });

  it('counts a day without recipients as run', async () => {
    const { services, runner } = await setup({ tokens: 0 });
    expect(await runner.runIfDue()).toEqual({ at: START, queued: 0, withNumbers: false });
    expect(await runner.lastRunAt()).toBe(START);
    expect(await rows(services)).toEqual([]);
  });

  it('runs now on request, and the schedule then waits a day from that run', async () => {
    const { services, runner } = await setup();
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    await vi.advanceTimersByTimeAsync(5 * HOUR);
    const run = await runner.runNow();
    expect(run.at).toBe(START + 5 * HOUR);
    expect(await runner.nextRunAt()).toBe(START + 5 * HOUR + DAY_MS);
    await vi.advanceTimersByTimeAsync(DAY_MS - HOUR);
    expect(await phoneIns(services)).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(HOUR);
    expect(await phoneIns(services)).toHaveLength(3);
  });

  it('never runs twice for two simultaneous requests', async () => {
    const { services, runner } = await setup({ stats: () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100)) });
    const both = Promise.all([runner.runIfDue(), runner.runIfDue()]);
    await vi.advanceTimersByTimeAsync(200);
    const [first, second] = await both;
    expect(first?.queued).toBe(1);
    expect(second).toBeUndefined();
    expect(await phoneIns(services)).toHaveLength(1);
  });

  it('runs once when two schedulers share one database (two processes on one file)', async () => {
    const slow: StatsSource = () => new Promise((resolve) => setTimeout(() => resolve(undefined), 100));
    const { services, runner } = await setup({ stats: slow });
    const other = new DailyStats(services, { stats: slow });
    runners.push(other);
    const both = Promise.all([runner.runIfDue(), other.runIfDue()]);
    await vi.advanceTimersByTimeAsync(200);
    expect((await both).filter(Boolean)).toHaveLength(1);
    expect(await phoneIns(services)).toHaveLength(1);
  });

  it('does nothing at all when analytics is disabled', async () => {
    const { services, runner } = await setup({ disabled: true });
    runner.start();
    await vi.advanceTimersByTimeAsync(3 * DAY_MS);
    expect(await runner.runNow()).toMatchObject({ queued: 0 });
    expect(await rows(services)).toEqual([]);
    expect(await runner.lastRunAt()).toBeNull();
  });

  it('stops looking once stopped', async () => {
    const { services, runner } = await setup();
    runner.start();
    await vi.advanceTimersByTimeAsync(0);
    await runner.stop();
    await vi.advanceTimersByTimeAsync(3 * DAY_MS);
    expect(await phoneIns(services)).toHaveLength(1);
  });
});
