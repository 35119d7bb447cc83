// The SQLite schema: drizzle-kit generates drizzle/sqlite/ from it (npm run db:generate). The queries that use
// it are plain SQL in ../sql-*.ts, the same for both dialects; this file and ../postgres/schema.ts must agree.
import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** The install's identity: exactly one row (id 1), made once and never changed. */
export const install = sqliteTable(
  'install',
  {
    id: integer('id').primaryKey(),
    uuid: text('uuid').notNull(),
    createdAt: integer('created_at').notNull(),
    /** When the daily stats last ran (ms since epoch); null before the first run. */
    lastDailyStatsAt: integer('last_daily_stats_at'),
    /** A random secret mixed into every key the admin signs with. Null only in installs older than it. */
    signingSecret: text('signing_secret'),
    /** Moves on every change to the tokens' settings, so every process refreshes its cache. */
    tokensVersion: integer('tokens_version').notNull().default(0),
  },
  (t) => [check('install_single_row', sql`${t.id} = 1`)],
);

/** GA4 properties that receive data, each feature switchable. */
export const tokens = sqliteTable('tokens', {
  id: integer('id').primaryKey({ autoIncrement: true }),
  name: text('name').notNull(),
  measurementId: text('measurement_id').notNull(),
  apiSecret: text('api_secret').notNull().default(''),
  sendDailyStats: integer('send_daily_stats', { mode: 'boolean' }).notNull().default(true),
  sendTaskEvents: integer('send_task_events', { mode: 'boolean' }).notNull().default(true),
  sendPageViews: integer('send_page_views', { mode: 'boolean' }).notNull().default(true),
  /** JSON array of regular expressions matched against page paths. */
  ignorePaths: text('ignore_paths').notNull().default('[]'),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  lastDeliveredAt: integer('last_delivered_at'),
  lastError: text('last_error'),
  lastErrorAt: integer('last_error_at'),
  /** GA is failing for this token: nothing goes to it before this time (0: not held). */
  heldUntil: integer('held_until').notNull().default(0),
  /** Passing failures in a row; the back-off grows with them. */
  failures: integer('failures').notNull().default(0),
  /** The claim delivering this token's events right now, if any: one relay at a time per token. */
  claimedBy: text('claimed_by'),
  /** When that claim's lease runs out (another relay may then take the token over). */
  leaseUntil: integer('lease_until').notNull().default(0),
  /** The last row (by due time, then id) the claim took: rows up to it are being delivered, never trimmed. */
  leaseDue: integer('lease_due'),
  leaseId: integer('lease_id'),
});

/** Every event for every token waits here until GA took it. */
export const outbox = sqliteTable(
  'outbox',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    tokenId: integer('token_id')
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    /** GA4 event name: page_view, task_event, daily_stats, installed_app. */
    name: text('name').notNull(),
    /** JSON of the event's parameters. */
    params: text('params').notNull(),
    /** Page views only: JSON of the device fields, which belong to the whole GA request. */
    device: text('device'),
    /** Groups events that may share one GA request ('' for events without a device). */
    deviceKey: text('device_key').notNull().default(''),
    /** When it happened, ms since epoch; sent as timestamp_micros. */
    occurredAt: integer('occurred_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    /** When it is due. */
    nextAttemptAt: integer('next_attempt_at').notNull(),
    /** pending: an event waiting for GA; packed: a packet waiting for GA; failed: GA refused it for good (kept for the admin). */
    status: text('status', { enum: ['pending', 'packed', 'failed'] }).notNull().default('pending'),
    lastError: text('last_error'),
    /** How many events the row holds: 1, or more for a packet. */
    n: integer('n').notNull().default(1),
    /**
     * A packet (status `packed`): several events of one token and name queued in one commit, one a line (see
     * sql-packets.ts); `params`, `device` and `device_key` are then empty. NULL for a row of one event.
     */
    events: text('events'),
  },
  (t) => [index('outbox_due').on(t.status, t.tokenId, t.nextAttemptAt)],
);

/** Deliveries per token per hour (kept 90 days), for the admin's counts and chart. */
export const deliveryStats = sqliteTable(
  'delivery_stats',
  {
    tokenId: integer('token_id')
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    /** Start of the hour, ms since epoch. */
    hour: integer('hour').notNull(),
    delivered: integer('delivered').notNull().default(0),
    failed: integer('failed').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tokenId, t.hour] })],
);

/** Events dropped without being sent, by why and by GA event name. */
export const dropCounts = sqliteTable(
  'drop_counts',
  {
    reason: text('reason').notNull(),
    event: text('event').notNull(),
    n: integer('n').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.reason, t.event] })],
);

/** The last requests that went to each token, exactly as GA received them (bounded per token). */
export const sentRequests = sqliteTable(
  'sent_requests',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    tokenId: integer('token_id')
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    at: integer('at').notNull(),
    status: integer('status').notNull(),
    events: integer('events').notNull(),
    body: text('body').notNull(),
  },
  (t) => [index('sent_requests_token').on(t.tokenId, t.id)],
);

/** The host's latest numbers for the daily stats (from `PUT /api/stats`); one row at most. */
export const hostStats = sqliteTable(
  'host_stats',
  {
    id: integer('id').primaryKey(),
    users: integer('users').notNull(),
    tokens: integer('tokens').notNull(),
    /** JSON array of app names. */
    apps: text('apps').notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [check('host_stats_single_row', sql`${t.id} = 1`)],
);

/** Logged-in admin sessions, by the hash of their id: a logout deletes the row, in every process. */
export const adminSessions = sqliteTable('admin_sessions', {
  idHash: text('id_hash').primaryKey(),
  expiresAt: integer('expires_at').notNull(),
});
