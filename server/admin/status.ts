import { redactSecret } from '../core/secrets.ts';
import type { Services } from '../services.ts';
import type { DropCount, FailedEvent, Token } from '../store/types.ts';
import { compileIgnorePaths } from '../tokens/ignore-paths.ts';
import { skipReason } from '../tokens/team-token.ts';

const DAY_MS = 24 * 3_600_000;
const HOUR_MS = 3_600_000;

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
  /** GA is failing for the token: nothing is sent to it before this time (null: not held). */
  heldUntil: number | null;
  /** Stored ignore paths that cannot be used (invalid, or past the limits), each treated as matching every path. */
  unusableIgnorePaths: string[];
}

/** The delivery status of each token, in the tokens' order. */
export async function deliveryStatuses(services: Pick<Services, 'store' | 'clock'>, list: Token[]): Promise<DeliveryStatus[]> {
  const now = services.clock();
  const since = now - DAY_MS;
  const counts = new Map((await services.store.tokenCounts(since - (since % HOUR_MS))).map((c) => [c.tokenId, c]));
  return list.map((token) => ({
    tokenId: token.id,
    skipped: skipReason(token),
    delivered24h: counts.get(token.id)?.delivered ?? 0,
    waiting: counts.get(token.id)?.waiting ?? 0,
    failed: counts.get(token.id)?.failed ?? 0,
    lastDeliveredAt: token.lastDeliveredAt,
    // Blanked when stored already; again here for errors stored by older versions.
    lastError: token.lastError === null ? null : redactSecret(token.lastError, token.apiSecret),
    lastErrorAt: token.lastErrorAt,
    heldUntil: token.heldUntil > now ? token.heldUntil : null,
    unusableIgnorePaths: compileIgnorePaths(token.ignorePaths).problems,
  }));
}

/** One event GA refused for good. */
export type FailedDelivery = FailedEvent;

/** The most recent failed deliveries (newest first, at most `limit`) and how many there are in all. */
export async function failedDeliveries(services: Pick<Services, 'store'>, limit = 100): Promise<{ total: number; items: FailedDelivery[] }> {
  const [failed, tokens] = await Promise.all([services.store.failedEvents(limit), services.store.listTokens()]);
  const secrets = new Map(tokens.map((t) => [t.id, t.apiSecret]));
  return { total: failed.total, items: failed.items.map((item) => ({ ...item, error: redactSecret(item.error, secrets.get(item.tokenId) ?? '') })) };
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
  /** Events dropped without being sent, by reason and event name. */
  dropped: DropCount[];
  /** The daily stats: last and next run (ms since epoch). */
  dailyStats: { lastRunAt: number | null; nextRunAt: number };
  /** Why the database cannot be written right now, if it cannot (hits are then answered 503). */
  storeTrouble: string | undefined;
}

/** The install's identity and state. */
export async function installInfo(services: Pick<Services, 'identity' | 'config' | 'store' | 'dailyStats'>): Promise<InstallInfo> {
  const [outboxDepth, dropped, lastRunAt, nextRunAt] = await Promise.all([
    services.store.pendingCount(),
    services.store.dropCounts(),
    services.dailyStats.lastRunAt(),
    services.dailyStats.nextRunAt(),
  ]);
  return {
    uuid: services.identity.uuid,
    createdAt: services.identity.createdAt,
    appVersion: services.config.appVersion,
    disabled: services.config.disabled,
    disabledBy: services.config.disabled ? 'ANALYTICS_DISABLED' : undefined,
    outboxDepth,
    dropped,
    dailyStats: { lastRunAt, nextRunAt },
    storeTrouble: services.store.trouble(),
  };
}
