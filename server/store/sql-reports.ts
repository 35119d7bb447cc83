import { BOOKKEEPING, type SqlDriver } from './sql-driver.ts';
import type { Store } from './store.ts';
import type { FailedEvent, TokenCounts } from './types.ts';

type ReportQueries = Pick<Store, 'tokenCounts' | 'hourCounts' | 'failedEvents' | 'dropCounts' | 'recordSent' | 'sentRequests'>;

/** What the admin reads: counts, failed events, drops, and what went to GA. */
export function reportQueries(db: SqlDriver): ReportQueries {
  return {
    async tokenCounts(since) {
      const delivered = await db.query<{ tokenId: number; n: number }>(
        'SELECT token_id AS "tokenId", sum(delivered) AS n FROM delivery_stats WHERE hour >= ? GROUP BY token_id',
        [since],
      );
      const queued = await db.query<{ tokenId: number; status: string; n: number }>(
        'SELECT token_id AS "tokenId", status, coalesce(sum(n), 0) AS n FROM outbox GROUP BY token_id, status',
      );
      const counts = new Map<number, TokenCounts>();
      const of = (tokenId: number) => {
        let entry = counts.get(tokenId);
        if (!entry) counts.set(tokenId, (entry = { tokenId, delivered: 0, waiting: 0, failed: 0 }));
        return entry;
      };
      for (const row of delivered.rows) of(row.tokenId).delivered = Number(row.n);
      // Waiting: single events ('pending') and packets ('packed') together.
      for (const row of queued.rows) of(row.tokenId)[row.status === 'failed' ? 'failed' : 'waiting'] += Number(row.n);
      return [...counts.values()];
    },

    async hourCounts(since) {
      const { rows } = await db.query<{ tokenId: number; hour: number; delivered: number; failed: number }>(
        'SELECT token_id AS "tokenId", hour, delivered, failed FROM delivery_stats WHERE hour >= ? ORDER BY token_id, hour',
        [since],
      );
      return rows;
    },

    async failedEvents(limit) {
      const total = await db.query<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE status = 'failed'");
      const { rows } = await db.query<FailedEvent>(
        `SELECT o.id, o.token_id AS "tokenId", t.name AS "tokenName", o.name AS event, o.occurred_at AS "occurredAt",
           o.attempts, COALESCE(o.last_error, '') AS error
         FROM outbox o JOIN tokens t ON t.id = o.token_id WHERE o.status = 'failed' ORDER BY o.id DESC LIMIT ?`,
        [limit],
      );
      return { total: Number(total.rows[0]?.n ?? 0), items: rows };
    },

    async dropCounts() {
      const { rows } = await db.query<{ reason: string; event: string; count: number }>('SELECT reason, event, n AS count FROM drop_counts ORDER BY reason, event');
      return rows.map((r) => ({ ...r, count: Number(r.count) }));
    },

    async recordSent(tokenId, requests, keep) {
      if (requests.length === 0) return;
      await db.transaction(async (tx) => {
        for (const { at, status, events, body } of requests) {
          await tx.query('INSERT INTO sent_requests (token_id, at, status, events, body) VALUES (?, ?, ?, ?, ?)', [tokenId, at, status, events, body]);
        }
        // The newest `keep` by GA's answer stay, as the admin lists them: a relay that held its requests for a
        // second may write older ones after another relay's newer ones.
        await tx.query('DELETE FROM sent_requests WHERE token_id = ? AND id NOT IN (SELECT id FROM sent_requests WHERE token_id = ? ORDER BY at DESC, id DESC LIMIT ?)', [
          tokenId,
          tokenId,
          keep,
        ]);
      }, BOOKKEEPING);
    },

    async sentRequests(tokenId, limit) {
      // By the time GA answered: two relays taking turns at a token each write their requests up to a second
      // late (see SentLog), so an older request can be written after a newer one.
      const { rows } = await db.query<{ at: number; status: number; events: number; body: string }>(
        'SELECT at, status, events, body FROM sent_requests WHERE token_id = ? ORDER BY at DESC, id DESC LIMIT ?',
        [tokenId, limit],
      );
      return rows;
    },
  };
}
