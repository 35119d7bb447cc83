// The PostgreSQL schema: drizzle-kit generates drizzle/postgres/ from it (npm run db:generate). The queries that
// use it are plain SQL in ../sql-*.ts, the same for both dialects; this file and ../sqlite/schema.ts must agree.
// Times are bigint milliseconds since the epoch, as in SQLite, and JSON is kept as text, serialised once.
import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, pgTable, primaryKey, smallint, text } from 'drizzle-orm/pg-core';

const ms = (name: string) => bigint(name, { mode: 'number' });

export const install = pgTable(
  'install',
  {
    id: smallint('id').primaryKey(),
    uuid: text('uuid').notNull(),
    createdAt: ms('created_at').notNull(),
    lastDailyStatsAt: ms('last_daily_stats_at'),
    signingSecret: text('signing_secret'),
    tokensVersion: bigint('tokens_version', { mode: 'number' }).notNull().default(0),
  },
  (t) => [check('install_single_row', sql`${t.id} = 1`)],
);

export const tokens = pgTable('tokens', {
  id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
  name: text('name').notNull(),
  measurementId: text('measurement_id').notNull(),
  apiSecret: text('api_secret').notNull().default(''),
  sendDailyStats: boolean('send_daily_stats').notNull().default(true),
  sendTaskEvents: boolean('send_task_events').notNull().default(true),
  sendPageViews: boolean('send_page_views').notNull().default(true),
  ignorePaths: text('ignore_paths').notNull().default('[]'),
  createdAt: ms('created_at').notNull(),
  updatedAt: ms('updated_at').notNull(),
  lastDeliveredAt: ms('last_delivered_at'),
  lastError: text('last_error'),
  lastErrorAt: ms('last_error_at'),
  heldUntil: ms('held_until').notNull().default(0),
  failures: integer('failures').notNull().default(0),
  claimedBy: text('claimed_by'),
  leaseUntil: ms('lease_until').notNull().default(0),
  leaseDue: ms('lease_due'),
  leaseId: bigint('lease_id', { mode: 'number' }),
});

export const outbox = pgTable(
  'outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    tokenId: bigint('token_id', { mode: 'number' })
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    params: text('params').notNull(),
    device: text('device'),
    deviceKey: text('device_key').notNull().default(''),
    occurredAt: ms('occurred_at').notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ms('next_attempt_at').notNull(),
    status: text('status', { enum: ['pending', 'packed', 'failed'] }).notNull().default('pending'),
    lastError: text('last_error'),
    n: integer('n').notNull().default(1),
    events: text('events'),
  },
  (t) => [index('outbox_due').on(t.status, t.tokenId, t.nextAttemptAt)],
);

export const deliveryStats = pgTable(
  'delivery_stats',
  {
    tokenId: bigint('token_id', { mode: 'number' })
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    hour: ms('hour').notNull(),
    delivered: integer('delivered').notNull().default(0),
    failed: integer('failed').notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.tokenId, t.hour] })],
);

export const dropCounts = pgTable(
  'drop_counts',
  {
    reason: text('reason').notNull(),
    event: text('event').notNull(),
    n: bigint('n', { mode: 'number' }).notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.reason, t.event] })],
);

export const sentRequests = pgTable(
  'sent_requests',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    tokenId: bigint('token_id', { mode: 'number' })
      .notNull()
      .references(() => tokens.id, { onDelete: 'cascade' }),
    at: ms('at').notNull(),
    status: integer('status').notNull(),
    events: integer('events').notNull(),
    body: text('body').notNull(),
  },
  (t) => [index('sent_requests_token').on(t.tokenId, t.id)],
);

export const hostStats = pgTable(
  'host_stats',
  {
    id: smallint('id').primaryKey(),
    users: integer('users').notNull(),
    tokens: integer('tokens').notNull(),
    apps: text('apps').notNull(),
    updatedAt: ms('updated_at').notNull(),
  },
  (t) => [check('host_stats_single_row', sql`${t.id} = 1`)],
);

export const adminSessions = pgTable('admin_sessions', {
  idHash: text('id_hash').primaryKey(),
  expiresAt: ms('expires_at').notNull(),
});
