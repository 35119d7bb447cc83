import { sql } from 'drizzle-orm';
import { check, index, integer, primaryKey, sqliteTable, text } from 'drizzle-orm/sqlite-core';

/** GA4 device fields, derived from a browser's User-Agent; page views only. */
export interface DeviceFields {
  category: string;
  language: string;
  operating_system?: string;
  operating_system_version?: string;
  browser?: string;
  browser_version?: string;
}

/** Event parameters as GA4 takes them. */
export type EventParams = Record<string, string | number>;

/** The install's identity: exactly one row (id 1), made once and never changed. */
export const install = sqliteTable(
  'install',
  {
    id: integer('id').primaryKey(),
    uuid: text('uuid').notNull(),
    createdAt: integer('created_at').notNull(),
    /** When the daily stats last ran (ms since epoch); null before the first run. */
    lastDailyStatsAt: integer('last_daily_stats_at'),
    /**
     * A random secret of this install, mixed into every key the admin signs with: what a visitor is handed
     * (a signed cookie, a CSRF token) then says nothing about the admin token. Null until first needed.
     */
    signingSecret: text('signing_secret'),
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
  /** Regular expressions (sources) matched against page paths; a match is not sent to this token. */
  ignorePaths: text('ignore_paths', { mode: 'json' }).$type<string[]>().notNull().default(sql`'[]'`),
  createdAt: integer('created_at').notNull(),
  updatedAt: integer('updated_at').notNull(),
  lastDeliveredAt: integer('last_delivered_at'),
  lastError: text('last_error'),
  lastErrorAt: integer('last_error_at'),
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
    params: text('params', { mode: 'json' }).$type<EventParams>().notNull(),
    /** Page views only: the device fields, which belong to the whole GA request. */
    device: text('device', { mode: 'json' }).$type<DeviceFields>(),
    /** Groups events that may share one GA request ('' for events without a device). */
    deviceKey: text('device_key').notNull().default(''),
    /** When it happened, ms since epoch; sent as timestamp_micros. */
    occurredAt: integer('occurred_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: integer('next_attempt_at').notNull(),
    /** pending: waiting for GA; failed: GA refused it for good (kept for the admin). */
    status: text('status', { enum: ['pending', 'failed'] }).notNull().default('pending'),
    lastError: text('last_error'),
  },
  (t) => [index('outbox_due').on(t.status, t.tokenId, t.nextAttemptAt)],
);

/** Deliveries per token per hour, for the admin's "delivered in the last 24 h". */
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

/** The host's latest numbers for the daily stats (from `PUT /api/stats`); one row at most. */
export const hostStats = sqliteTable(
  'host_stats',
  {
    id: integer('id').primaryKey(),
    users: integer('users').notNull(),
    tokens: integer('tokens').notNull(),
    apps: text('apps', { mode: 'json' }).$type<string[]>().notNull(),
    updatedAt: integer('updated_at').notNull(),
  },
  (t) => [check('host_stats_single_row', sql`${t.id} = 1`)],
);

export type Token = typeof tokens.$inferSelect;
export type NewToken = typeof tokens.$inferInsert;
export type OutboxRow = typeof outbox.$inferSelect;

/**
 * Admin sessions that are logged in: a session cookie counts only while its row is here, so a logout
 * (which deletes the row) holds across restarts and processes. Only a hash of the session id is stored.
 */
export const adminSessions = sqliteTable('admin_sessions', {
  idHash: text('id_hash').primaryKey(),
  expiresAt: integer('expires_at').notNull(),
});
