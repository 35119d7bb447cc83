import { z } from 'zod';
import type { Store } from '../store/store.ts';
import type { EventParams, HostStats } from '../store/types.ts';
import { checkText, eventsForRecipients, InvalidEventError, requiredHostText, type HostEventDeps } from './task-events.ts';

export type { HostStats } from '../store/types.ts';

/** What the schedule works with: the host-event deps, and the store where the last run is kept. */
export interface DailyStatsDeps extends HostEventDeps {
  store: Store;
}

/** A day, the interval between two daily-stats runs. */
export const DAY_MS = 24 * 3_600_000;
/** The scheduler looks at the clock at least this often, so a suspended machine or a clock change is noticed. */
export const CHECK_EVERY_MS = 3_600_000;
/**
 * The first look after `start()` waits this long: a host that sends its numbers (`PUT /api/stats`) as it
 * starts gets them into a new install's first run rather than a phone-in alone.
 */
export const START_DELAY_MS = 60_000;

/** Where a run gets the host's numbers (library use); `undefined` means none today. */
export type StatsSource = () => HostStats | undefined | Promise<HostStats | undefined>;

/** What one run did. */
export interface DailyStatsRun {
  /** When it ran (ms since epoch), stored as the install's last run (unless analytics is disabled). */
  at: number;
  /** Events queued, over all recipient tokens. */
  queued: number;
  /** Whether the host's numbers went with the phone-in. */
  withNumbers: boolean;
}

/** How the schedule gets the host's numbers and when it first looks. */
export interface DailyStatsOptions {
  /** The host's numbers (library use); without it, the latest `PUT /api/stats`. */
  stats?: StatsSource;
  /** How long after `start()` the first look waits; {@link START_DELAY_MS} when omitted. */
  startDelayMs?: number;
  /** How long the `stats` callback may take; {@link STATS_TIMEOUT_MS} when omitted. */
  statsTimeoutMs?: number;
}

/** What the admin works with: run now, and when the schedule ran last and runs next. */
export interface DailyStatsRunner {
  runNow(): Promise<DailyStatsRun>;
  lastRunAt(): Promise<number | null>;
  nextRunAt(): Promise<number>;
}

/** The largest count kept (a 32-bit integer column in PostgreSQL): a bigger one is the host's mistake, a 400. */
const MAX_COUNT = 2_147_483_647;

const hostStatsShape = {
  users: z.number().int().min(0).max(MAX_COUNT),
  tokens: z.number().int().min(0).max(MAX_COUNT),
  apps: z.array(requiredHostText).max(1000),
};

/** The body of `PUT /api/stats`. Strict: an unknown field is refused rather than silently ignored. */
export const hostStatsSchema = z.strictObject(hostStatsShape);

/** What a `stats` callback returns (library use): other fields of the host's own object are ignored. */
const callbackStatsSchema = z.object(hostStatsShape);

/**
 * Checks the host's numbers (the body of `PUT /api/stats`, or with `ignoreUnknown` what a `stats` callback
 * returned): throws a ZodError for a wrong shape or, unless `ignoreUnknown`, an unknown field;
 * {@link InvalidEventError} for a blank or control-character app name. App names are cut at GA's limit and
 * listed once each.
 * @example parseHostStats({ users: 3, tokens: 1, apps: ['forum', 'forum'] }).apps // ['forum']
 */
export function parseHostStats(input: unknown, { ignoreUnknown = false }: { ignoreUnknown?: boolean } = {}): HostStats {
  const { users, tokens, apps } = (ignoreUnknown ? callbackStatsSchema : hostStatsSchema).parse(input);
  const names = apps.map((app, i) => checkText(`apps.${i}`, app.trim(), true));
  return { users, tokens, apps: [...new Set(names)] };
}

/**
 * The events of one run: the phone-in always, the host's numbers and one `installed_app` per app when known.
 * Unknown numbers are left out, never sent as zero.
 * @example dailyStatsEvents(undefined) // [{ name: 'daily_stats', params: { label: 'existence', value: 1 } }]
 */
export function dailyStatsEvents(stats: HostStats | undefined): Array<{ name: string; params: EventParams }> {
  const stat = (label: string, value: number) => ({ name: 'daily_stats', params: { label, value } });
  if (!stats) return [stat('existence', 1)];
  return [
    stat('existence', 1),
    stat('users', stats.users),
    stat('tokens', stats.tokens),
    stat('apps', stats.apps.length),
    ...stats.apps.map((app) => ({ name: 'installed_app', params: { label: app, value: 1 } })),
  ];
}

/**
 * Whether the daily run is due: never ran, or a day has passed since. A last run far in the future
 * (the clock was set back) does not block the schedule for good.
 * @example isDailyRunDue(null, Date.now()) // true
 */
export function isDailyRunDue(lastRunAt: number | null, now: number): boolean {
  if (lastRunAt === null) return true;
  return now - lastRunAt >= DAY_MS || lastRunAt - now > DAY_MS;
}

/**
 * The once-a-day run of the daily stats. The time of the last run is stored with the install, in the
 * same transaction as the run's events, so a restart neither skips nor repeats a day, and a collector
 * that was off for a week sends once when it comes back.
 */
export class DailyStats implements DailyStatsRunner {
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private running: Promise<unknown> = Promise.resolve();

  private readonly stats: StatsSource | undefined;
  private readonly startDelayMs: number;
  private readonly statsTimeoutMs: number;

  constructor(
    private readonly services: DailyStatsDeps,
    options: DailyStatsOptions = {},
  ) {
    this.stats = options.stats;
    this.startDelayMs = options.startDelayMs ?? START_DELAY_MS;
    this.statsTimeoutMs = options.statsTimeoutMs ?? STATS_TIMEOUT_MS;
  }

  /** Runs shortly after start if due, then keeps to the schedule (nothing at all when analytics is disabled). */
  start(): void {
    if (this.started || this.services.config.disabled) return;
    this.started = true;
    this.schedule(this.startDelayMs);
  }

  /** Stops the schedule and waits for a run in progress. */
  async stop(): Promise<void> {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running.catch(() => undefined);
  }

  /** When the last run was (ms since epoch), or null before the first. */
  lastRunAt(): Promise<number | null> {
    return this.services.store.lastDailyStatsAt();
  }

  /** When the next scheduled run falls due (now, if it is due already). */
  async nextRunAt(): Promise<number> {
    const last = await this.lastRunAt();
    const now = this.services.clock();
    return isDailyRunDue(last, now) || last === null ? now : last + DAY_MS;
  }

  /** One run now, whatever the schedule says (the admin's button); the next scheduled run is a day later. */
  runNow(): Promise<DailyStatsRun> {
    return this.serialize(() => this.run(false));
  }

  /** One run if it is due; what the timer calls. Resolves with the run, or undefined when not due. */
  runIfDue(): Promise<DailyStatsRun | undefined> {
    return this.serialize(() => this.run(true));
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.running.catch(() => undefined).then(work);
    this.running = next;
    return next;
  }

  private run(onlyIfDue: false): Promise<DailyStatsRun>;
  private run(onlyIfDue: true): Promise<DailyStatsRun | undefined>;
  private async run(onlyIfDue: boolean): Promise<DailyStatsRun | undefined> {
    const { services } = this;
    if (services.config.disabled) return { at: services.clock(), queued: 0, withNumbers: false };
    if (onlyIfDue && !isDailyRunDue(await this.lastRunAt(), services.clock())) return undefined;
    const stats = await this.readStats();
    const at = services.clock();
    const events = eventsForRecipients(services, 'dailyStats', dailyStatsEvents(stats), at);
    // One transaction: the stored time and the queued events stand or fall together, and the last run is looked
    // at again in it (another process sharing the store may have run meanwhile): once a day per install.
    const ran = await services.store.recordDailyRun({ at, onlyIfDue, intervalMs: DAY_MS, events });
    if (!ran) return undefined;
    services.log.info(`daily stats: ${events.length} events queued${stats ? '' : ' (phone-in only: no numbers from the host)'}`);
    return { at, queued: events.length, withNumbers: stats !== undefined };
  }

  /** The host's numbers: the callback in library use, else the latest `PUT /api/stats`; undefined when none. */
  private async readStats(): Promise<HostStats | undefined> {
    if (!this.stats) return this.services.store.hostStats();
    try {
      const stats = await withTimeout(Promise.resolve(this.stats()), this.statsTimeoutMs, 'the stats callback did not answer in time');
      return stats === undefined ? undefined : parseHostStats(stats, { ignoreUnknown: true });
    } catch (error) {
      // The phone-in still goes out: a failing callback must not hide the install.
      const why = error instanceof InvalidEventError || error instanceof z.ZodError ? 'invalid numbers' : 'the stats callback failed';
      this.services.log.warn(`daily stats: ${why}, sending the phone-in only (${errorSummary(error)})`);
      return undefined;
    }
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), Math.max(0, Math.min(delayMs, CHECK_EVERY_MS)));
    // The schedule alone never keeps the host's process alive.
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.timer = undefined;
    if (!this.started) return;
    try {
      await this.runIfDue();
    } catch (error) {
      this.services.log.error('daily stats run failed', error);
    }
    if (!this.started) return;
    const next = await this.nextRunAt().catch(() => this.services.clock() + CHECK_EVERY_MS);
    if (this.started) this.schedule(next - this.services.clock());
  }
}

function errorSummary(error: unknown): string {
  if (error instanceof z.ZodError) return error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
  return error instanceof Error ? error.message : String(error);
}

/**
 * Stores the host's latest numbers for the next daily run (`PUT /api/stats`).
 * @example await saveHostStats(services, parseHostStats({ users: 3, tokens: 1, apps: [] }));
 */
export function saveHostStats(services: Pick<DailyStatsDeps, 'store' | 'clock'>, stats: HostStats): Promise<void> {
  return services.store.saveHostStats(stats, services.clock());
}

/** How long the host's stats callback may take before the phone-in goes out without its numbers. */
export const STATS_TIMEOUT_MS = 30_000;

/** `promise`, or a rejection with `message` once `ms` passed (a stuck callback must not stall the schedule). */
function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
