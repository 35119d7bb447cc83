import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DatabaseError } from '../../server/store/errors.ts';
import { openStore } from '../../server/store/open-store.ts';
import { openSqlite } from '../../server/store/sqlite/sqlite-driver.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openTestStore } from '../helpers/app.ts';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const MIGRATIONS = (JSON.parse(readFileSync(new URL('../../drizzle/sqlite/meta/_journal.json', import.meta.url), 'utf8')) as { entries: unknown[] }).entries
  .length;

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'analytics-db-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('database and install identity', () => {
  it('creates the folder, applies migrations and makes one UUIDv4 that survives a restart', async () => {
    const path = join(tempDir(), 'nested', 'folder', 'analytics.db');
    const first = await openStore(path);
    const identity = await first.install(TEAM_TOKEN, Date.now());
    expect(identity.uuid).toMatch(UUID_V4);
    await first.close();

    const second = await openTestStore({ sqliteFile: path }); // migrations run again on an already migrated file
    expect((await second.store.install(TEAM_TOKEN, Date.now())).uuid).toBe(identity.uuid);
    expect(await second.sql('SELECT id FROM install')).toHaveLength(1);
    expect(await second.sql('SELECT hash FROM __drizzle_migrations')).toHaveLength(MIGRATIONS);
    await second.store.close();
  });

  it('commits each write at the sync level it asks for, whatever came before: durable ones synced, bookkeeping not waited for', async () => {
    const driver = openSqlite(join(tempDir(), 'levels.db'));
    // `PRAGMA synchronous` read inside each transaction: 2 is FULL (synced before the commit returns), 1 is NORMAL.
    const level = (durable: boolean) =>
      driver.transaction(async (tx) => {
        await tx.query("INSERT INTO drop_counts (reason, event, n) VALUES ('level-test', ?, 1)", [`${durable}-${Math.random()}`]);
        return (await tx.query<{ synchronous: number }>('PRAGMA synchronous')).rows[0]?.synchronous;
      }, { durable });
    const seen: Array<number | undefined> = [];
    for (const durable of [true, false, false, true, true, false, true]) seen.push(await level(durable));
    expect(seen).toEqual([2, 1, 1, 2, 2, 1, 2]);
    // A write on its own, after bookkeeping, commits synced too.
    await level(false);
    await driver.query("INSERT INTO drop_counts (reason, event, n) VALUES ('level-test', 'on-its-own', 1)");
    expect((await driver.query<{ synchronous: number }>('PRAGMA synchronous')).rows[0]?.synchronous).toBe(2);
    await driver.close();
  });

  it('refuses a second identity row', async () => {
    const { store, sql } = await openTestStore('sqlite');
    await store.install(TEAM_TOKEN, Date.now());
    await expect(sql('INSERT INTO install (id, uuid, created_at) VALUES (2, ?, 0)', ['another'])).rejects.toThrow(/CHECK constraint/);
    await expect(sql('INSERT INTO install (id, uuid, created_at) VALUES (1, ?, 0)', ['another'])).rejects.toThrow(/UNIQUE|PRIMARY/);
    await store.close();
  });

  it('preloads token 1 with all three features on and the admin ignored, exactly once', async () => {
    const path = join(tempDir(), 'analytics.db');
    const store = await openStore(path);
    await store.install(TEAM_TOKEN, Date.now());
    const [token, ...others] = await store.listTokens();
    expect(others).toEqual([]);
    expect(token).toMatchObject({
      id: 1,
      measurementId: TEAM_TOKEN.measurementId,
      sendDailyStats: true,
      sendTaskEvents: true,
      sendPageViews: true,
      ignorePaths: ['^/admin/'],
    });
    expect(await store.deleteToken(1)).toBe(true);
    await store.close();

    const reopened = await openStore(path);
    await reopened.install(TEAM_TOKEN, Date.now());
    expect(await reopened.listTokens()).toEqual([]); // a deleted token 1 stays deleted
    await reopened.close();
  });

  it('explains a corrupt file and leaves it untouched', async () => {
    const path = join(tempDir(), 'corrupt.db');
    writeFileSync(path, 'this is not a database, but somebody may need it');
    await expect(openStore(path)).rejects.toThrow(DatabaseError);
    await expect(openStore(path)).rejects.toThrow(/file is not a database/);
    expect(() => openSqlite(path)).toThrow(DatabaseError);
    expect(readFileSync(path, 'utf8')).toBe('this is not a database, but somebody may need it');
  });

  it('explains a folder that cannot be created', async () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    await expect(openStore(join(file, 'sub', 'analytics.db'))).rejects.toThrow(DatabaseError);
    await expect(openStore(join(file, 'sub', 'analytics.db'))).rejects.toThrow(/cannot create the database folder/);
  });

  it('explains a PostgreSQL server that cannot be reached, without the password', async () => {
    const error: unknown = await openStore('postgres://analytics:hunter2-secret@127.0.0.1:1/analytics', { connectTimeoutMs: 2_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect((error as Error).message).toMatch(/^cannot use the PostgreSQL database at 127\.0\.0\.1:1\/analytics: /);
    expect((error as Error).message).not.toContain('hunter2');
  });
});

describe('a PostgreSQL store', () => {
  it('keeps its identity and token 1 across a restart, and runs its migrations again harmlessly', async () => {
    const first = await openTestStore('postgres');
    const identity = await first.store.install(TEAM_TOKEN, Date.now());
    expect(identity.uuid).toMatch(UUID_V4);
    await first.store.close();

    const second = await openStore(first.location);
    expect(await second.install(TEAM_TOKEN, Date.now())).toEqual(identity);
    expect((await second.listTokens()).map((t) => t.id)).toEqual([1]);
    await second.close();
  });
});
