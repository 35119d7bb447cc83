import type { SqlDriver, SqlExecutor } from './sql-driver.ts';
import type { Store } from './store.ts';
import type { Token, TokenSettings } from './types.ts';

type TokenQueries = Pick<Store, 'listTokens' | 'findToken' | 'createToken' | 'updateToken' | 'deleteToken' | 'tokensVersion'>;

const TOKEN_COLUMNS = `id, name, measurement_id AS "measurementId", api_secret AS "apiSecret",
  send_daily_stats AS "sendDailyStats", send_task_events AS "sendTaskEvents", send_page_views AS "sendPageViews",
  ignore_paths AS "ignorePaths", created_at AS "createdAt", updated_at AS "updatedAt",
  last_delivered_at AS "lastDeliveredAt", last_error AS "lastError", last_error_at AS "lastErrorAt",
  held_until AS "heldUntil", failures`;

/** The column of each setting a token's update may change. */
const SETTING_COLUMN: Record<keyof TokenSettings, string> = {
  name: 'name',
  measurementId: 'measurement_id',
  apiSecret: 'api_secret',
  sendDailyStats: 'send_daily_stats',
  sendTaskEvents: 'send_task_events',
  sendPageViews: 'send_page_views',
  ignorePaths: 'ignore_paths',
};

type TokenRow = Omit<Token, 'ignorePaths' | 'sendDailyStats' | 'sendTaskEvents' | 'sendPageViews'> & {
  ignorePaths: string;
  sendDailyStats: unknown;
  sendTaskEvents: unknown;
  sendPageViews: unknown;
};

/** A stored row as a {@link Token}: SQLite's 1/0 as booleans, the ignore paths parsed. */
function tokenOf(row: TokenRow): Token {
  return {
    ...row,
    sendDailyStats: Boolean(row.sendDailyStats),
    sendTaskEvents: Boolean(row.sendTaskEvents),
    sendPageViews: Boolean(row.sendPageViews),
    ignorePaths: JSON.parse(row.ignorePaths) as string[],
  };
}

function stored(key: keyof TokenSettings, value: TokenSettings[keyof TokenSettings]): unknown {
  return key === 'ignorePaths' ? JSON.stringify(value) : value;
}

/** Every process refreshes its token cache when this moves; it moves in the same transaction as the change. */
async function bumpVersion(tx: SqlExecutor): Promise<void> {
  await tx.query('UPDATE install SET tokens_version = tokens_version + 1 WHERE id = 1');
}

/** The tokens and their settings. */
export function tokenQueries(db: SqlDriver): TokenQueries {
  return {
    async listTokens() {
      const { rows } = await db.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY id`);
      return rows.map(tokenOf);
    },

    async findToken(id) {
      const { rows } = await db.query<TokenRow>(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`, [id]);
      return rows[0] ? tokenOf(rows[0]) : undefined;
    },

    createToken(settings, now) {
      return db.transaction(async (tx) => {
        const keys = Object.keys(SETTING_COLUMN) as Array<keyof TokenSettings>;
        const { rows } = await tx.query<TokenRow>(
          `INSERT INTO tokens (${keys.map((k) => SETTING_COLUMN[k]).join(', ')}, created_at, updated_at)
           VALUES (${keys.map(() => '?').join(', ')}, ?, ?) RETURNING ${TOKEN_COLUMNS}`,
          [...keys.map((k) => stored(k, settings[k])), now, now],
        );
        await bumpVersion(tx);
        return tokenOf(rows[0] as TokenRow);
      });
    },

    updateToken(id, patch, now) {
      return db.transaction(async (tx) => {
        const keys = (Object.keys(patch) as Array<keyof TokenSettings>).filter((k) => k in SETTING_COLUMN && patch[k] !== undefined);
        const sets = [...keys.map((k) => `${SETTING_COLUMN[k]} = ?`), 'updated_at = ?'];
        const { rows } = await tx.query<TokenRow>(`UPDATE tokens SET ${sets.join(', ')} WHERE id = ? RETURNING ${TOKEN_COLUMNS}`, [
          ...keys.map((k) => stored(k, patch[k] as TokenSettings[typeof k])),
          now,
          id,
        ]);
        if (rows.length === 0) return undefined;
        await bumpVersion(tx);
        return tokenOf(rows[0] as TokenRow);
      });
    },

    deleteToken(id) {
      return db.transaction(async (tx) => {
        // Its waiting and failed events, counts and sent requests go with it (foreign keys, on delete cascade).
        const { changes } = await tx.query('DELETE FROM tokens WHERE id = ?', [id]);
        if (changes > 0) await bumpVersion(tx);
        return changes > 0;
      });
    },

    async tokensVersion() {
      const { rows } = await db.query<{ version: number }>('SELECT tokens_version AS version FROM install WHERE id = 1');
      return rows[0]?.version ?? 0;
    },
  };
}
