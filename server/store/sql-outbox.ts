import { BOOKKEEPING, exclusively, greatest, idIn, type SqlDriver, type SqlExecutor } from './sql-driver.ts';
import { claimedEvents, explode, insertEvents, rowOf, settlePackets, translate } from './sql-packets.ts';
import type { Settlement, Store } from './store.ts';
import type { ClaimedRow, ClaimRef, DropCount } from './types.ts';

type OutboxQueries = Pick<
  Store,
  | 'enqueue'
  | 'pendingCount'
  | 'trimOutbox'
  | 'claim'
  | 'endClaim'
  | 'releaseLeases'
  | 'settle'
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

/** Whether the claim still holds its token (no other relay took it over). */
async function holds(tx: SqlExecutor, claim: ClaimRef): Promise<boolean> {
  const { rows } = await tx.query('SELECT 1 AS held FROM tokens WHERE id = ? AND claimed_by = ?', [claim.tokenId, claim.id]);
  return rows.length > 0;
}

/** Gives a claim's lease on its token back (`?`: token, claim). */
const END_LEASE = 'UPDATE tokens SET claimed_by = NULL, lease_until = 0, lease_due = NULL, lease_id = NULL WHERE id = ? AND claimed_by = ?';

/** The due rows a claim reads first (see `claim`). */
const FIRST_READ_ROWS = 64;

/** Rows waiting for GA: single events ('pending') and packets ('packed'). */
const WAITING = "status IN ('pending', 'packed')";

/** A token's due rows of one status, in due order (`?`: token, now, limit). */
const dueRows = (status: 'pending' | 'packed') => `SELECT id, n, next_attempt_at AS "dueAt" FROM outbox WHERE status = '${status}' AND token_id = ? AND next_attempt_at <= ?
  ORDER BY next_attempt_at, id LIMIT ?`;

/** Not among the rows a live lease is delivering (`?`: now). */
const NOT_LEASED = `NOT EXISTS (SELECT 1 FROM tokens t WHERE t.id = outbox.token_id AND t.lease_until > ? AND t.lease_id IS NOT NULL
  AND (outbox.next_attempt_at < t.lease_due OR (outbox.next_attempt_at = t.lease_due AND outbox.id <= t.lease_id)))`;

/** The outbox: queueing, the bound, claims with a lease, and what each outcome does to rows and token. */
export function outboxQueries(db: SqlDriver): OutboxQueries {
  const { dialect } = db;
  let claims = 0;
  /** Gives a claim's lease back in a transaction of its own (bookkeeping: lost in a power cut, the lease runs out). */
  const endLease = async (claim: ClaimRef): Promise<void> => {
    await db.transaction((tx) => tx.query(END_LEASE, [claim.tokenId, claim.id]), BOOKKEEPING);
  };

  return {
    enqueue(events) {
      if ((Array.isArray(events) ? events : events.tokenIds).length === 0) return Promise.resolve(new Map());
      return db.transaction((tx) => insertEvents(tx, dialect, events));
    },

    async pendingCount() {
      const { rows } = await db.query<{ n: number }>(`SELECT coalesce(sum(n), 0) AS n FROM outbox WHERE ${WAITING}`);
      return Number(rows[0]?.n ?? 0);
    },

    trimOutbox(max, now) {
      return db.transaction(async (tx) => {
        const lock = exclusively(dialect, 'trim');
        if (lock) await tx.query(...lock);
        const { rows } = await tx.query<{ n: number }>(`SELECT coalesce(sum(n), 0) AS n FROM outbox WHERE ${WAITING}`);
        let excess = Number(rows[0]?.n ?? 0) - max;
        const dropped: Array<{ name: string }> = [];
        // Page views first, oldest first; host events only when they alone are over the bound. Rows a relay is
        // delivering right now are never taken from under it. A packet goes whole, or (the last one) in part.
        for (const kind of ["name = 'page_view'", "name <> 'page_view'"]) {
          if (excess <= 0) break;
          const oldest = await tx.query<{ id: number; n: number; name: string }>(
            `SELECT id, n, name FROM outbox WHERE ${WAITING} AND ${kind} AND ${NOT_LEASED} ORDER BY id LIMIT ?`,
            [now, excess],
          );
          const whole: number[] = [];
          let partly: number | undefined;
          for (const row of oldest.rows) {
            if (Number(row.n) > excess) {
              partly = Number(row.id);
              break;
            }
            whole.push(Number(row.id));
            excess -= Number(row.n);
            for (let i = 0; i < Number(row.n); i += 1) dropped.push({ name: row.name });
          }
          if (whole.length > 0) {
            const [inList, param] = idIn(dialect, 'id', whole);
            await tx.query(`DELETE FROM outbox WHERE ${inList}`, [param]);
          }
          if (partly !== undefined && excess > 0) {
            const { rows: singles } = await explode(tx, dialect, [partly]);
            const [inList, param] = idIn(dialect, 'id', [...singles.values()].sort((a, b) => a - b).slice(0, excess));
            const gone = await tx.query<{ name: string }>(`DELETE FROM outbox WHERE ${inList} RETURNING name`, [param]);
            dropped.push(...gone.rows);
            excess -= gone.rows.length;
          }
        }
        return countDrops(tx, 'outbox-full', dropped);
      }, BOOKKEEPING);
    },

    async claim({ tokenId, owner, now, leaseMs, limit }) {
      claims += 1;
      const id = `${owner}:${claims}`;
      // The rows are read in the transaction and unpacked after it: the write lock is held no longer than it must be.
      const claimed = await db.transaction(async (tx): Promise<Array<ClaimedRow & { events: string | null }>> => {
        // The lease is on the token: one relay at a time delivers a token's events, and the rows themselves are
        // not written to claim them (writing each row was most of what delivering it cost).
        const taken = await tx.query(
          `UPDATE tokens SET claimed_by = ?, lease_until = ?, lease_due = NULL, lease_id = NULL WHERE id = ? AND lease_until <= ?`,
          [id, now + leaseMs, tokenId, now],
        );
        if (taken.changes === 0) return [];
        // The due rows in order up to `limit` events (a packet counts as its events): their ids first, then what
        // they hold, so that rows past the limit are never read whole. Single events and packets each come in the
        // order of the (status, token, due) index, merged. A backlog of packets is hundreds of rows where a claim
        // takes a few dozen: a few rows are read first, and as many as `limit` only when those fall short.
        const dueUpTo = (rows: number) =>
          tx.query<{ id: number; n: number; dueAt: number }>(
            `SELECT * FROM (${dueRows('pending')}) singles UNION ALL SELECT * FROM (${dueRows('packed')}) packets
             ORDER BY "dueAt", id LIMIT ?`,
            [tokenId, now, rows, tokenId, now, rows, rows],
          );
        let due = await dueUpTo(Math.min(limit, FIRST_READ_ROWS));
        if (due.rows.length === FIRST_READ_ROWS && due.rows.reduce((sum, row) => sum + Number(row.n), 0) < limit) due = await dueUpTo(limit);
        const chosen: typeof due.rows = [];
        let events = 0;
        for (const row of due.rows) {
          if (events >= limit) break;
          chosen.push(row);
          events += Number(row.n);
        }
        const last = chosen.at(-1);
        if (!last) {
          // Nothing due: the lease goes back at once, and the caller has nothing to end.
          await tx.query(END_LEASE, [tokenId, id]);
          return [];
        }
        const [inList, param] = idIn(dialect, 'id', chosen.map((row) => Number(row.id)));
        const { rows } = await tx.query<ClaimedRow & { events: string | null }>(
          `SELECT id, token_id AS "tokenId", name, params AS "paramsJson", device AS "deviceJson", device_key AS "deviceKey",
             occurred_at AS "occurredAt", attempts, next_attempt_at AS "dueAt", events
           FROM outbox WHERE ${inList} ORDER BY next_attempt_at, id`,
          [param],
        );
        if (rows.length === 0) {
          // Gone between the two reads (PostgreSQL: another process's trim): the lease goes back at once.
          await tx.query(END_LEASE, [tokenId, id]);
          return [];
        }
        // Rows up to the last one taken are being delivered: the bound's trim leaves them alone.
        await tx.query('UPDATE tokens SET lease_due = ?, lease_id = ? WHERE id = ?', [last.dueAt, last.id, tokenId]);
        return rows;
      }, BOOKKEEPING);
      try {
        return { id, tokenId, rows: claimed.flatMap(claimedEvents) };
      } catch (error) {
        // A packet that cannot be read: the claim fails holding nothing, its lease given back.
        if (claimed.length > 0) await endLease({ tokenId, id });
        throw error;
      }
    },

    endClaim: endLease,

    async releaseLeases(owner) {
      const prefix = `${owner}:`;
      const { changes } = await db.query(
        'UPDATE tokens SET claimed_by = NULL, lease_until = 0, lease_due = NULL, lease_id = NULL WHERE substr(claimed_by, 1, ?) = ?',
        [prefix.length, prefix],
      );
      return changes;
    },

    settle(o) {
      const noWork = o.delivered.length === 0 && o.failed.length === 0 && o.retried.length === 0;
      if (noWork) {
        const none = { delivered: 0, failed: 0, retried: 0 };
        return o.end ? endLease(o.claim).then(() => none) : Promise.resolve(none);
      }
      return db.transaction(async (tx) => {
        // The token's row first, as a token's delete takes it first too: the two never wait on each other in a
        // circle. What GA said last is what the admin sees; the longest hold asked for wins, whichever relay asked.
        const lastError = [...o.failed, ...o.retried].at(-1)?.error ?? null;
        const hold = o.retried.reduce((longest, r) => (r.hold.until > longest.until ? r.hold : longest), { until: 0, failures: 0 });
        const token = await tx.query(
          `UPDATE tokens SET
             last_delivered_at = CASE WHEN CAST(? AS BOOLEAN) THEN ? ELSE last_delivered_at END,
             last_error = COALESCE(CAST(? AS TEXT), last_error), last_error_at = CASE WHEN CAST(? AS TEXT) IS NULL THEN last_error_at ELSE ? END,
             held_until = ${greatest(dialect, 'held_until', '?')}, failures = ${greatest(dialect, 'failures', '?')}
           WHERE id = ?`,
          [o.delivered.length > 0, o.now, lastError, lastError, o.now, hold.until, hold.failures, o.claim.tokenId],
        );
        if (token.changes === 0) return { delivered: 0, failed: 0, retried: 0 }; // deleted meanwhile, with its events
        // Failing or holding back rows, or cutting a packet, needs the token's lease still: another relay may have
        // taken them over. The token's row is this transaction's now, so the answer holds until it commits.
        const stillHeld = await holds(tx, o.claim);
        // Packets first: one GA took whole leaves; the rest of one it took in part is settled below.
        const others = [...o.failed, ...o.retried].flatMap((group) => group.ids);
        const packets = [...o.delivered, ...others].some((id) => id < 0)
          ? await settlePackets(tx, dialect, { delivered: o.delivered, others }, stillHeld)
          : { delivered: 0, rows: new Map<number, number>() };
        let delivered = packets.delivered;
        const single = o.delivered.filter((id) => id > 0);
        if (single.length > 0) {
          // GA took them: they leave, whoever holds the token now. Rows another claim delivered meanwhile (this
          // one's lease ran out while it was stuck) are gone already and are not counted twice. SQLite's `+status`
          // looks the rows up by id rather than scanning every waiting row through the status index.
          const [inList, param] = idIn(dialect, 'id', single);
          const status = dialect === 'sqlite' ? '+status' : 'status';
          delivered += (await tx.query(`DELETE FROM outbox WHERE ${inList} AND ${status} = 'pending'`, [param])).changes;
        }
        let failed = 0;
        let retried = 0;
        for (const group of stillHeld ? o.failed : []) {
          const ids = translate(group.ids, packets.rows);
          if (ids.length === 0) continue;
          const [inList, param] = idIn(dialect, 'id', ids);
          failed += (await tx.query(`UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE ${inList}`, [group.error, param])).changes;
        }
        for (const group of stillHeld ? o.retried : []) {
          const ids = translate(group.ids, packets.rows);
          if (ids.length === 0) continue;
          const [inList, param] = idIn(dialect, 'id', ids);
          retried += (await tx.query(`UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE ${inList}`, [group.nextAttemptAt, group.error, param]))
            .changes;
        }
        if (delivered + failed > 0) await countOutcome(tx, o.claim.tokenId, o.now, delivered, failed);
        if (o.end) await tx.query(END_LEASE, [o.claim.tokenId, o.claim.id]);
        return { delivered, failed, retried };
      }, BOOKKEEPING);
    },

    discard(s) {
      if (s.ids.length === 0) return Promise.resolve([]);
      return db.transaction(async (tx) => {
        // Only while the claim holds the token: another relay may have taken the rows over.
        if (!(await holds(tx, s.claim))) return [];
        let ids = s.ids;
        if (ids.some((id) => id < 0)) {
          // Some are in packets: those become single events first.
          const { rows } = await explode(tx, dialect, [...new Set(ids.filter((id) => id < 0).map(rowOf))]);
          ids = translate(ids, rows);
          if (ids.length === 0) return [];
        }
        const [inList, param] = idIn(dialect, 'id', ids);
        const { rows } = await tx.query<{ name: string }>(`DELETE FROM outbox WHERE ${inList} RETURNING name`, [param]);
        return countDrops(tx, s.reason, rows);
      }, BOOKKEEPING);
    },

    async clearHold(tokenId) {
      await db.query('UPDATE tokens SET held_until = 0, failures = 0 WHERE id = ? AND (held_until <> 0 OR failures <> 0)', [tokenId]);
    },

    async dueTimes() {
      // Per token, the earliest due row is the first entry of the (status, token, due) index.
      const { rows } = await db.query<{ tokenId: number; due: number | null; heldUntil: number }>(
        `SELECT id AS "tokenId", held_until AS "heldUntil",
           (SELECT min(m) FROM (SELECT min(next_attempt_at) AS m FROM outbox o WHERE o.status = 'pending' AND o.token_id = t.id
              UNION ALL SELECT min(next_attempt_at) AS m FROM outbox o WHERE o.status = 'packed' AND o.token_id = t.id) due_rows) AS due FROM tokens t`,
      );
      return rows.flatMap((r) => (r.due === null ? [] : [{ tokenId: r.tokenId, dueAt: Math.max(Number(r.due), Number(r.heldUntil)) }]));
    },

    expire(cutoff, now) {
      return db.transaction(async (tx) => {
        // A packet holding an event past the cutoff becomes single events first: each expires by its own age.
        const old = await tx.query<{ id: number }>(`SELECT id FROM outbox WHERE status = 'packed' AND occurred_at < ? AND ${NOT_LEASED}`, [
          cutoff,
          now,
        ]);
        await explode(
          tx,
          dialect,
          old.rows.map((r) => Number(r.id)),
        );
        const { rows } = await tx.query<{ name: string }>(
          `UPDATE outbox SET status = 'failed', last_error = ?
           WHERE status = 'pending' AND occurred_at < ? AND ${NOT_LEASED} RETURNING name`,
          ["older than GA's 72-hour limit", cutoff, now],
        );
        return countDrops(tx, 'expired', rows);
      }, BOOKKEEPING);
    },

    pruneFailed(before, keep) {
      return db.transaction(async (tx) => {
        const old = await tx.query("DELETE FROM outbox WHERE status = 'failed' AND occurred_at < ?", [before]);
        const excess = await tx.query(
          "DELETE FROM outbox WHERE status = 'failed' AND id NOT IN (SELECT id FROM outbox WHERE status = 'failed' ORDER BY id DESC LIMIT ?)",
          [keep],
        );
        return old.changes + excess.changes;
      }, BOOKKEEPING);
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
          `UPDATE outbox SET status = 'pending', next_attempt_at = ?, attempts = 0, last_error = NULL
           WHERE status = 'failed' AND token_id = ? AND occurred_at >= ? AND ${inList}`,
          ids ? [now, tokenId, since, param] : [now, tokenId, since],
        );
        if (changes === 0) return 0;
        await tx.query(`UPDATE outbox SET next_attempt_at = ? WHERE ${WAITING} AND token_id = ? AND next_attempt_at > ?`, [
          now,
          tokenId,
          now,
        ]);
        return changes;
      });
    },
  };
}
