import { exclusively, greatest, idIn, skipLocked, type SqlDriver, type SqlExecutor } from './sql-driver.ts';
import type { Settlement, Store } from './store.ts';
import type { DeviceFields, DropCount, EventParams, NewEvent, OutboxRow } from './types.ts';

type OutboxQueries = Pick<
  Store,
  | 'enqueue'
  | 'pendingCount'
  | 'trimOutbox'
  | 'claim'
  | 'release'
  | 'delivered'
  | 'retryLater'
  | 'failed'
  | 'discard'
  | 'clearHold'
  | 'dueTimes'
  | 'expire'
  | 'pruneFailed'
  | 'pruneHourCounts'
  | 'retryFailed'
>;

const HOUR_MS = 3_600_000;
const hourOf = (ms: number) => ms - (ms % HOUR_MS);

/** A stable key for device fields: events with equal keys may share a GA request. */
export function deviceKey(device: DeviceFields): string {
  return JSON.stringify([
    device.category,
    device.language,
    device.operating_system ?? '',
    device.operating_system_version ?? '',
    device.browser ?? '',
    device.browser_version ?? '',
  ]);
}

/** `fn`, remembering its answer per argument object (the events of one hit share their params and device). */
function memoByIdentity<T extends object>(fn: (value: T) => string): (value: T) => string {
  const seen = new Map<T, string>();
  return (value) => {
    let answer = seen.get(value);
    if (answer === undefined) seen.set(value, (answer = fn(value)));
    return answer;
  };
}

/**
 * Writes events in the caller's transaction and counts them by name. A new event is due from when it
 * happened, so events taken in due order come oldest first; a token deleted meanwhile gets nothing.
 */
export async function insertEvents(tx: SqlExecutor, dialect: SqlDriver['dialect'], events: readonly NewEvent[]): Promise<Map<string, number>> {
  const written = new Map<string, number>();
  if (events.length === 0) return written;
  const json = memoByIdentity((value: object) => JSON.stringify(value));
  const key = memoByIdentity(deviceKey);
  const columns = events.map((e) => [e.tokenId, e.name, json(e.params), e.device ? json(e.device) : null, e.device ? key(e.device) : '', e.occurredAt] as const);
  if (dialect === 'postgres') {
    // The tokens are locked first (a delete waits for this commit, or this waits for the delete and then
    // leaves its token out), then one statement writes the whole batch: one round trip, whatever its size.
    const wanted = [...new Set(columns.map((c) => c[0]))];
    const { rows: present } = await tx.query<{ id: number }>('SELECT id FROM tokens WHERE id = ANY(?::bigint[]) FOR KEY SHARE', [wanted]);
    const alive = new Set(present.map((r) => Number(r.id)));
    const kept = columns.filter((c) => alive.has(c[0]));
    if (kept.length === 0) return written;
    const { rows } = await tx.query<{ name: string }>(
      `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at)
       SELECT v.token_id, v.name, v.params, v.device, v.device_key, v.occurred_at, v.occurred_at
       FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[]) AS v(token_id, name, params, device, device_key, occurred_at)
       RETURNING name`,
      [0, 1, 2, 3, 4, 5].map((i) => kept.map((c) => c[i])),
    );
    for (const { name } of rows) written.set(name, (written.get(name) ?? 0) + 1);
    return written;
  }
  for (const [tokenId, name, params, device, deviceKeyValue, occurredAt] of columns) {
    const { changes } = await tx.query(
      `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at)
       SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tokens WHERE id = ?)`,
      [tokenId, name, params, device, deviceKeyValue, occurredAt, occurredAt, tokenId],
    );
    if (changes > 0) written.set(name, (written.get(name) ?? 0) + 1);
  }
  return written;
}

/** Adds dropped events to the counts, by reason and event name. */
async function countDrops(tx: SqlExecutor, reason: string, names: Array<{ name: string }>): Promise<DropCount[]> {
  const byName = new Map<string, number>();
  for (const { name } of names) byName.set(name, (byName.get(name) ?? 0) + 1);
  const drops: DropCount[] = [];
  for (const [event, count] of byName) {
    await tx.query('INSERT INTO drop_counts (reason, event, n) VALUES (?, ?, ?) ON CONFLICT (reason, event) DO UPDATE SET n = drop_counts.n + excluded.n', [
      reason,
      event,
      count,
    ]);
    drops.push({ reason, event, count });
  }
  return drops;
}

/** Counts delivered and failed events in the token's hour; the caller holds the token's row. */
async function countOutcome(tx: SqlExecutor, tokenId: number, now: number, delivered: number, failed: number): Promise<void> {
  await tx.query(
    `INSERT INTO delivery_stats (token_id, hour, delivered, failed) VALUES (?, ?, ?, ?)
     ON CONFLICT (token_id, hour) DO UPDATE SET delivered = delivery_stats.delivered + excluded.delivered, failed = delivery_stats.failed + excluded.failed`,
    [tokenId, hourOf(now), delivered, failed],
  );
}

type ClaimedRow = Omit<OutboxRow, 'params' | 'device'> & { params: string; device: string | null };

const NOT_LEASED = '(claimed_by IS NULL OR next_attempt_at <= ?)';

/** The outbox: queueing, the bound, claims with a lease, and what each outcome does to rows and token. */
export function outboxQueries(db: SqlDriver): OutboxQueries {
  const { dialect } = db;
  /** `id IN (…)` for the settlement's rows, still held by its claim. */
  const held = (s: Settlement): [string, unknown[]] => {
    const [inList, param] = idIn(dialect, 'id', s.ids);
    return [`${inList} AND claimed_by = ?`, [param, s.claim.id]];
  };
  let claims = 0;

  return {
    enqueue(events) {
      if (events.length === 0) return Promise.resolve(new Map());
      return db.transaction((tx) => insertEvents(tx, dialect, events));
    },

    async pendingCount() {
      const { rows } = await db.query<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE status = 'pending'");
      return Number(rows[0]?.n ?? 0);
    },

    trimOutbox(max, now) {
      return db.transaction(async (tx) => {
        const lock = exclusively(dialect, 'trim');
        if (lock) await tx.query(...lock);
        const { rows } = await tx.query<{ n: number }>("SELECT count(*) AS n FROM outbox WHERE status = 'pending'");
        let excess = Number(rows[0]?.n ?? 0) - max;
        const dropped: Array<{ name: string }> = [];
        // Page views first, oldest first; host events only when they alone are over the bound. Rows a relay is
        // delivering right now are never taken from under it.
        for (const kind of ["name = 'page_view'", "name <> 'page_view'"]) {
          if (excess <= 0) break;
          const gone = await tx.query<{ name: string }>(
            `DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND ${kind} AND ${NOT_LEASED} ORDER BY id LIMIT ?) RETURNING name`,
            [now, excess],
          );
          dropped.push(...gone.rows);
          excess -= gone.rows.length;
        }
        return countDrops(tx, 'outbox-full', dropped);
      });
    },

    claim({ tokenId, owner, now, leaseMs, limit }) {
      claims += 1;
      const id = `${owner}:${claims}`;
      return db.transaction(async (tx) => {
        const { rows } = await tx.query<ClaimedRow>(
          `SELECT id, token_id AS "tokenId", name, params, device, device_key AS "deviceKey", occurred_at AS "occurredAt",
             attempts, next_attempt_at AS "dueAt"
           FROM outbox WHERE status = 'pending' AND token_id = ? AND next_attempt_at <= ?
           ORDER BY next_attempt_at, id LIMIT ?${skipLocked(dialect)}`,
          [tokenId, now, limit],
        );
        if (rows.length > 0) {
          const [inList, param] = idIn(dialect, 'id', rows.map((r) => r.id));
          // The lease: not due again before it runs out, and only this claim may settle the rows meanwhile.
          await tx.query(`UPDATE outbox SET claimed_by = ?, next_attempt_at = ? WHERE ${inList}`, [id, now + leaseMs, param]);
        }
        const claimed = rows.map((r) => ({
          ...r,
          params: JSON.parse(r.params) as EventParams,
          device: r.device === null ? null : (JSON.parse(r.device) as DeviceFields),
        }));
        return { id, tokenId, rows: claimed };
      });
    },

    async release(claim, ids) {
      if (ids.length === 0) return;
      // Due again as each was before the claim (one statement per distinct time; usually one or two).
      const wanted = new Set(ids);
      const byDue = new Map<number, number[]>();
      for (const row of claim.rows) if (wanted.has(row.id)) byDue.set(row.dueAt, [...(byDue.get(row.dueAt) ?? []), row.id]);
      await db.transaction(async (tx) => {
        for (const [dueAt, group] of byDue) {
          const [where, params] = held({ claim, ids: group, now: 0 });
          await tx.query(`UPDATE outbox SET claimed_by = NULL, next_attempt_at = ? WHERE ${where}`, [dueAt, ...params]);
        }
      });
    },

    delivered(s) {
      if (s.ids.length === 0) return Promise.resolve(0);
      return db.transaction(async (tx) => {
        // The token's row first, as a token's delete takes it first too: the two never wait on each other in a circle.
        const token = await tx.query('UPDATE tokens SET last_delivered_at = ? WHERE id = ?', [s.now, s.claim.tokenId]);
        if (token.changes === 0) return 0; // deleted meanwhile, and its events with it
        const [where, params] = held(s);
        // A claim whose lease ran out and was taken over finds nothing here: the other claim counts them.
        const { changes } = await tx.query(`DELETE FROM outbox WHERE ${where}`, params);
        await countOutcome(tx, s.claim.tokenId, s.now, changes, 0);
        return changes;
      });
    },

    retryLater(s) {
      if (s.ids.length === 0) return Promise.resolve(0);
      return db.transaction(async (tx) => {
        // The token's row first (see `delivered`). The longest wait asked for wins, whichever relay asked.
        const token = await tx.query(
          `UPDATE tokens SET held_until = ${greatest(dialect, 'held_until', '?')}, failures = ${greatest(dialect, 'failures', '?')}, last_error = ?, last_error_at = ? WHERE id = ?`,
          [s.hold.until, s.hold.failures, s.error, s.now, s.claim.tokenId],
        );
        if (token.changes === 0) return 0;
        const [where, params] = held(s);
        const { changes } = await tx.query(
          `UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, claimed_by = NULL WHERE ${where}`,
          [s.nextAttemptAt, s.error, ...params],
        );
        return changes;
      });
    },

    failed(s) {
      if (s.ids.length === 0) return Promise.resolve(0);
      return db.transaction(async (tx) => {
        // The token's row first (see `delivered`).
        const token = await tx.query('UPDATE tokens SET last_error = ?, last_error_at = ? WHERE id = ?', [s.error, s.now, s.claim.tokenId]);
        if (token.changes === 0) return 0;
        const [where, params] = held(s);
        const { changes } = await tx.query(
          `UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?, claimed_by = NULL WHERE ${where}`,
          [s.error, ...params],
        );
        await countOutcome(tx, s.claim.tokenId, s.now, 0, changes);
        return changes;
      });
    },

    discard(s) {
      if (s.ids.length === 0) return Promise.resolve([]);
      return db.transaction(async (tx) => {
        const [where, params] = held(s);
        const { rows } = await tx.query<{ name: string }>(`DELETE FROM outbox WHERE ${where} RETURNING name`, params);
        return countDrops(tx, s.reason, rows);
      });
    },

    async clearHold(tokenId) {
      await db.query('UPDATE tokens SET held_until = 0, failures = 0 WHERE id = ? AND (held_until <> 0 OR failures <> 0)', [tokenId]);
    },

    async dueTimes() {
      // Per token, the earliest due row is the first entry of the (status, token, due) index.
      const { rows } = await db.query<{ tokenId: number; due: number | null; heldUntil: number }>(
        `SELECT id AS "tokenId", held_until AS "heldUntil",
           (SELECT min(next_attempt_at) FROM outbox o WHERE o.status = 'pending' AND o.token_id = t.id) AS due FROM tokens t`,
      );
      return rows.flatMap((r) => (r.due === null ? [] : [{ tokenId: r.tokenId, dueAt: Math.max(Number(r.due), Number(r.heldUntil)) }]));
    },

    expire(cutoff, now) {
      return db.transaction(async (tx) => {
        const { rows } = await tx.query<{ name: string }>(
          `UPDATE outbox SET status = 'failed', last_error = ?, claimed_by = NULL
           WHERE status = 'pending' AND occurred_at < ? AND ${NOT_LEASED} RETURNING name`,
          ["older than GA's 72-hour limit", cutoff, now],
        );
        return countDrops(tx, 'expired', rows);
      });
    },

    pruneFailed(before, keep) {
      return db.transaction(async (tx) => {
        const old = await tx.query("DELETE FROM outbox WHERE status = 'failed' AND occurred_at < ?", [before]);
        const excess = await tx.query(
          "DELETE FROM outbox WHERE status = 'failed' AND id NOT IN (SELECT id FROM outbox WHERE status = 'failed' ORDER BY id DESC LIMIT ?)",
          [keep],
        );
        return old.changes + excess.changes;
      });
    },

    async pruneHourCounts(before) {
      return (await db.query('DELETE FROM delivery_stats WHERE hour < ?', [before])).changes;
    },

    retryFailed({ tokenId, since, now, ids }) {
      return db.transaction(async (tx) => {
        // The token's row first (see `delivered`). A retry is a request to try now: the token's hold goes, and
        // what waited behind it is due now too.
        const token = await tx.query('UPDATE tokens SET held_until = 0, failures = 0 WHERE id = ?', [tokenId]);
        if (token.changes === 0) return 0;
        const [inList, param] = ids ? idIn(dialect, 'id', ids) : ['1 = 1', undefined];
        const { changes } = await tx.query(
          `UPDATE outbox SET status = 'pending', next_attempt_at = ?, attempts = 0, last_error = NULL, claimed_by = NULL
           WHERE status = 'failed' AND token_id = ? AND occurred_at >= ? AND ${inList}`,
          ids ? [now, tokenId, since, param] : [now, tokenId, since],
        );
        if (changes === 0) return 0;
        await tx.query("UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND token_id = ? AND next_attempt_at > ? AND claimed_by IS NULL", [
          now,
          tokenId,
          now,
        ]);
        return changes;
      });
    },
  };
}
