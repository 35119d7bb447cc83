import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openDatabase, DatabaseError } from '../../server/store/database.ts';
import { install, tokens } from '../../server/store/schema.ts';
import { ensureInstall } from '../../server/store/install.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';

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
  it('creates the folder, applies migrations and makes one UUIDv4 that survives a restart', () => {
    const path = join(tempDir(), 'nested', 'folder', 'analytics.db');
    const first = openDatabase(path);
    const identity = ensureInstall(first, TEAM_TOKEN);
    expect(identity.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    first.$client.close();

    const second = openDatabase(path); // migrations run again on an already migrated file
    expect(ensureInstall(second, TEAM_TOKEN).uuid).toBe(identity.uuid);
    expect(second.select().from(install).all()).toHaveLength(1);
    second.$client.close();
  });

  it('refuses a second identity row', () => {
    const db = openDatabase(':memory:');
    ensureInstall(db, TEAM_TOKEN);
    expect(() => db.insert(install).values({ id: 2, uuid: 'another', createdAt: 0 }).run()).toThrow(/CHECK constraint/);
    expect(() => db.insert(install).values({ id: 1, uuid: 'another', createdAt: 0 }).run()).toThrow(/UNIQUE|PRIMARY/);
  });

  it('preloads token 1 with all three features on and the admin ignored, exactly once', () => {
    const path = join(tempDir(), 'analytics.db');
    const db = openDatabase(path);
    ensureInstall(db, TEAM_TOKEN);
    const [token] = db.select().from(tokens).all();
    expect(token).toMatchObject({
      id: 1,
      measurementId: TEAM_TOKEN.measurementId,
      sendDailyStats: true,
      sendTaskEvents: true,
      sendPageViews: true,
      ignorePaths: ['^/admin/'],
    });
    db.delete(tokens).run();
    db.$client.close();

    const reopened = openDatabase(path);
    ensureInstall(reopened, TEAM_TOKEN);
    expect(reopened.select().from(tokens).all()).toEqual([]); // a deleted token 1 stays deleted
    reopened.$client.close();
  });

  it('explains a corrupt file and leaves it untouched', () => {
    const path = join(tempDir(), 'corrupt.db');
    writeFileSync(path, 'this is not a database, but somebody may need it');
    expect(() => openDatabase(path)).toThrow(DatabaseError);
    expect(() => openDatabase(path)).toThrow(/file is not a database/);
    expect(readFileSync(path, 'utf8')).toBe('this is not a database, but somebody may need it');
  });

  it('explains a folder that cannot be created', () => {
    const file = join(tempDir(), 'a-file');
    writeFileSync(file, '');
    expect(() => openDatabase(join(file, 'sub', 'analytics.db'))).toThrow(/cannot create the database folder/);
  });
});
