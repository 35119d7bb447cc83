import { count, desc, eq, gte, sql } from 'drizzle-orm';
import { deliveryStats, outbox, tokens, type Token } from '../store/schema.ts';
import type { Services } from '../services.ts';
import { skipReason } from '../tokens/team-token.ts';
import { redactSecret } from '../core/secrets.ts';

const DAY_MS = 24 * 3_600_000;

/** How deliveries to one token are going. */
export interface DeliveryStatus {
  tokenId: number;
  /** Why the relay does not send to this token at all (placeholder id, no secret), if it does not. */
  skipped: string | undefined;
  /** Events GA accepted in the last 24 hours (by the hour). */
  delivered24h: number;
  /** Events waiting in the outbox. */
  waiting: number;
  /** Events GA refused for good, kept for a retry. */
  failed: number;
  lastDeliveredAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

/** The delivery status of each token, in the tokens' order. */
export function deliveryStatuses(services: Pick<Services, 'db' | 'clock'>, list: Token[]): DeliveryStatus[] {
  const { db } = services;
  const since = services.clock() - DAY_MS;
  const delivered = new Map(
    db
      .select({ tokenId: deliveryStats.tokenId, n: sql<number>`sum(${deliveryStats.delivered})` })
      .from(deliveryStats)
      .where(gte(deliveryStats.hour, since - (since % 3_600_000)))
      .groupBy(deliveryStats.tokenId)
      .all()
      .map((row) => [row.tokenId, Number(row.n)]),
  );
  const queued = db
    .select({ tokenId: outbox.tokenId, status: outbox.status, n: count() })
    .from(outbox)
    .groupBy(outbox.tokenId, outbox.status)
    .all();
  const countOf = (tokenId: number, status: 'pending' | 'failed') =>
    queued.find((row) => row.tokenId === tokenId && row.status === status)?.n ?? 0;
  return list.map((token) => ({
    tokenId: token.id,
    skipped: skipReason(token),
    delivered24h: delivered.get(token.id) ?? 0,
    waiting: countOf(token.id, 'pending'),
    failed: countOf(token.id, 'failed'),
    lastDeliveredAt: token.lastDeliveredAt,
    lastError: token.lastError === null ? null : redactSecret(token.lastError, token.apiSecret),
    lastErrorAt: token.lastErrorAt,
  }));
}

/** One event GA refused for good. */
export interface FailedDelivery {
  id: number;
  tokenId: number;
  tokenName: string;
  /** The GA event name (page_view, task_event, ...). */
  event: string;
  occurredAt: number;
  attempts: number;
  error: string;
}

/** The most recent failed deliveries (newest first, at most `limit`) and how many there are in all. */
export function failedDeliveries(services: Pick<Services, 'db'>, limit = 100): { total: number; items: FailedDelivery[] } {
  const { db } = services;
  const total = db.select({ n: count() }).from(outbox).where(eq(outbox.status, 'failed')).get()?.n ?? 0;
  const rows = db
    .select({
      id: outbox.id,
      tokenId: outbox.tokenId,
      tokenName: tokens.name,
      apiSecret: tokens.apiSecret,
      event: outbox.name,
      occurredAt: outbox.occurredAt,
      attempts: outbox.attempts,
      error: outbox.lastError,
    })
    .from(outbox)
    .innerJoin(tokens, eq(tokens.id, outbox.tokenId))
    .where(eq(outbox.status, 'failed'))
    .orderBy(desc(outbox.id))
    .limit(limit)
    .all();
  return {
    total,
    items: rows.map(({ apiSecret, error, ...row }) => ({ ...row, error: redactSecret(error ?? '', apiSecret) })),
  };
}

/** The install as the admin shows it: who it is, what it reports as, and whether anything leaves at all. */
export interface InstallInfo {
  uuid: string;
  createdAt: number;
  appVersion: string;
  disabled: boolean;
  /** What turned analytics off (the only switch is the environment variable). */
  disabledBy: 'ANALYTICS_DISABLED' | undefined;
  /** Events waiting for GA, all tokens together. */
  outboxDepth: number;
  /** The daily stats: last and next run (ms since epoch). */
  dailyStats: { lastRunAt: number | null; nextRunAt: number };
}

/** The install's identity and state. */
export function installInfo(services: Pick<Services, 'identity' | 'config' | 'outbox' | 'dailyStats'>): InstallInfo {
  return {
    uuid: services.identity.uuid,
    createdAt: services.identity.createdAt,
    appVersion: services.config.appVersion,
    disabled: services.config.disabled,
    disabledBy: services.config.disabled ? 'ANALYTICS_DISABLED' : undefined,
    outboxDepth: services.outbox.depth(),
    dailyStats: { lastRunAt: services.dailyStats.lastRunAt(), nextRunAt: services.dailyStats.nextRunAt() },
  };
}
