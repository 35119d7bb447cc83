import { randomBytes } from 'node:crypto';
import { v4 as uuidv4 } from 'uuid';
import { forUpdate, type SqlDriver } from './sql-driver.ts';
import { insertEvents } from './sql-packets.ts';
import type { Store } from './store.ts';
import type { FirstToken, HostStats, Identity } from './types.ts';

type InstallQueries = Pick<
  Store,
  'install' | 'lastDailyStatsAt' | 'recordDailyRun' | 'hostStats' | 'saveHostStats' | 'addSession' | 'hasSession' | 'removeSession'
>;

function newSigningSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The install row, the daily run, the host's numbers and the admin sessions. */
export function installQueries(db: SqlDriver): InstallQueries {
  return {
    install(firstToken, now) {
      return db.transaction(async (tx) => {
        // Whoever inserts the row made the install, and preloads token 1 in the same transaction: exactly once,
        // however many processes start together (the others wait on the row, then find it there).
        const made = await tx.query(
          'INSERT INTO install (id, uuid, created_at, signing_secret, tokens_version) VALUES (1, ?, ?, ?, 0) ON CONFLICT (id) DO NOTHING RETURNING id',
          [uuidv4(), now, newSigningSecret()],
        );
        if (made.rows.length > 0) {
          await tx.query(
            'INSERT INTO tokens (id, name, measurement_id, api_secret, ignore_paths, created_at, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?)',
            [firstToken.name, firstToken.measurementId, firstToken.apiSecret, JSON.stringify(firstToken.ignorePaths), now, now],
          );
          // An explicit id leaves PostgreSQL's identity behind: the next token must not be given id 1 again.
          if (db.dialect === 'postgres') await tx.query("SELECT setval(pg_get_serial_sequence('tokens', 'id'), (SELECT max(id) FROM tokens))");
        } else if (firstToken.measurementId !== firstToken.placeholderId) {
          // Once the team's real id ships, installs still holding the placeholder take it.
          await tx.query('UPDATE tokens SET measurement_id = ?, api_secret = ?, updated_at = ? WHERE id = 1 AND measurement_id = ?', [
            firstToken.measurementId,
            firstToken.apiSecret,
            now,
            firstToken.placeholderId,
          ]);
        }
        // An install made before the signing secret existed gets one now.
        await tx.query('UPDATE install SET signing_secret = ? WHERE id = 1 AND signing_secret IS NULL', [newSigningSecret()]);
        const { rows } = await tx.query<Identity>('SELECT uuid, created_at AS "createdAt", signing_secret AS "signingSecret" FROM install WHERE id = 1');
        return rows[0] as Identity;
      });
    },

    async lastDailyStatsAt() {
      const { rows } = await db.query<{ at: number | null }>('SELECT last_daily_stats_at AS at FROM install WHERE id = 1');
      return rows[0]?.at ?? null;
    },

    recordDailyRun({ at, onlyIfDue, intervalMs, events }) {
      return db.transaction(async (tx) => {
        // Looked at under the row's lock: another process may have run meanwhile.
        const { rows } = await tx.query<{ at: number | null }>(`SELECT last_daily_stats_at AS at FROM install WHERE id = 1${forUpdate(db.dialect)}`);
        const last = rows[0]?.at ?? null;
        const due = last === null || at - last >= intervalMs || last - at > intervalMs;
        if (onlyIfDue && !due) return false;
        await tx.query('UPDATE install SET last_daily_stats_at = ? WHERE id = 1', [at]);
        await insertEvents(tx, db.dialect, events);
        return true;
      });
    },

    async hostStats() {
      const { rows } = await db.query<{ users: number; tokens: number; apps: string }>('SELECT users, tokens, apps FROM host_stats WHERE id = 1');
      const row = rows[0];
      return row ? ({ users: row.users, tokens: row.tokens, apps: JSON.parse(row.apps) as string[] } satisfies HostStats) : undefined;
    },

    async saveHostStats(stats, now) {
      await db.query(
        `INSERT INTO host_stats (id, users, tokens, apps, updated_at) VALUES (1, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET users = excluded.users, tokens = excluded.tokens, apps = excluded.apps, updated_at = excluded.updated_at`,
        [stats.users, stats.tokens, JSON.stringify(stats.apps), now],
      );
    },

    async addSession(idHash, expiresAt, now) {
      await db.transaction(async (tx) => {
        await tx.query('DELETE FROM admin_sessions WHERE expires_at <= ?', [now]);
        await tx.query('INSERT INTO admin_sessions (id_hash, expires_at) VALUES (?, ?)', [idHash, expiresAt]);
      });
    },

    async hasSession(idHash, now) {
      const { rows } = await db.query('SELECT 1 AS one FROM admin_sessions WHERE id_hash = ? AND expires_at > ?', [idHash, now]);
      return rows.length > 0;
    },

    async removeSession(idHash) {
      await db.query('DELETE FROM admin_sessions WHERE id_hash = ?', [idHash]);
    },
  };
}
