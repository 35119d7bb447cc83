import type { Services } from '../services.ts';
import type { HourCount } from '../store/types.ts';

const HOUR_MS = 3_600_000;
/** The token list's charts cover this many hours, the current one last: 7 days. */
export const HISTORY_HOURS = 7 * 24;

/** Events delivered and failed in one hour. */
export interface HourBar {
  /** Start of the hour, ms since epoch. */
  hour: number;
  delivered: number;
  failed: number;
}

/** Events delivered and failed on one UTC day (within the charted hours). */
export interface DayTotal {
  /** `YYYY-MM-DD`, UTC. */
  day: string;
  delivered: number;
  failed: number;
}

/** One token's deliveries over the last {@link HISTORY_HOURS} hours, by the hour and by the day. */
export interface DeliveryHistory {
  tokenId: number;
  /** Every hour of the span, oldest first, zeros included, so a chart needs no gaps logic. */
  hours: HourBar[];
  days: DayTotal[];
  delivered: number;
  failed: number;
}

/** The first hour charted when it is `now`. */
export function historyStart(now: number): number {
  return now - (now % HOUR_MS) - (HISTORY_HOURS - 1) * HOUR_MS;
}

/**
 * One token's history from the stored hour counts (of any tokens; others are ignored). Pure, for tests.
 * @example historyOf(1, [], Date.now()).hours.length // 168
 */
export function historyOf(tokenId: number, counts: HourCount[], now: number): DeliveryHistory {
  const from = historyStart(now);
  const hours: HourBar[] = Array.from({ length: HISTORY_HOURS }, (_, i) => ({ hour: from + i * HOUR_MS, delivered: 0, failed: 0 }));
  for (const count of counts) {
    if (count.tokenId !== tokenId) continue;
    // PostgreSQL's bigints may arrive as text from an older driver setup; numbers either way.
    const index = Math.floor((Number(count.hour) - from) / HOUR_MS);
    const bar = hours[index];
    if (!bar) continue;
    bar.delivered += Number(count.delivered);
    bar.failed += Number(count.failed);
  }
  const days = new Map<string, DayTotal>();
  for (const bar of hours) {
    const day = new Date(bar.hour).toISOString().slice(0, 10);
    const total = days.get(day) ?? { day, delivered: 0, failed: 0 };
    total.delivered += bar.delivered;
    total.failed += bar.failed;
    days.set(day, total);
  }
  return {
    tokenId,
    hours,
    days: [...days.values()],
    delivered: hours.reduce((sum, bar) => sum + bar.delivered, 0),
    failed: hours.reduce((sum, bar) => sum + bar.failed, 0),
  };
}

/** Each token's delivery history, in the tokens' order, from one read of the stored hour counts. */
export async function deliveryHistories(services: Pick<Services, 'store' | 'clock'>, tokenIds: number[]): Promise<DeliveryHistory[]> {
  const now = services.clock();
  const counts = await services.store.hourCounts(historyStart(now));
  return tokenIds.map((id) => historyOf(id, counts, now));
}
