import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../server/store/database.ts';
import { tokens } from '../../server/store/schema.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { ensureInstall } from '../../server/store/install.ts';
import { featureOfEvent } from '../../server/tokens/features.ts';
import { Tokens } from '../../server/tokens/tokens.ts';

const dir = mkdtempSync(join(tmpdir(), 'analytics-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the tokens module', () => {
  it('sees token changes made by another process on the same database file', () => {
    const path = join(dir, 'shared.db');
    const mine = openDatabase(path);
    ensureInstall(mine, TEAM_TOKEN);
    const other = openDatabase(path); // stands for a second process: its own connection
    const directory = new Tokens(mine, { clock: Date.now, recheckMs: 0 }); // look for outside changes on every read
    expect(directory.recipients('pageViews')).toEqual([]); // only the placeholder token 1

    const now = Date.now();
    const added = other.insert(tokens).values({ name: 'Other', measurementId: 'G-OTHER', apiSecret: 's', createdAt: now, updatedAt: now }).returning().get();
    expect(directory.recipients('pageViews').map((t) => t.token.id)).toEqual([added.id]);

    other.update(tokens).set({ sendPageViews: false }).where(eq(tokens.id, added.id)).run();
    expect(directory.recipients('pageViews')).toEqual([]);
    expect(directory.recipients('taskEvents').map((t) => t.token.id)).toEqual([added.id]);
    mine.$client.close();
    other.$client.close();
  });

  it('looks for outside changes at most once per interval', () => {
    const path = join(dir, 'interval.db');
    const mine = openDatabase(path);
    ensureInstall(mine, TEAM_TOKEN);
    const other = openDatabase(path);
    const directory = new Tokens(mine, { clock: Date.now, recheckMs: 60_000 });
    expect(directory.all()).toHaveLength(1);
    const now = Date.now();
    other.insert(tokens).values({ name: 'Other', measurementId: 'G-LATER', apiSecret: 's', createdAt: now, updatedAt: now }).run();
    expect(directory.all()).toHaveLength(1); // not yet: next look in a minute
    // A change made through the module itself is seen at once, and the reload brings the outside one too.
    directory.update(1, { name: 'Renamed here' });
    expect(directory.all()).toHaveLength(2);
    mine.$client.close();
    other.$client.close();
  });

  it('treats a stored ignore path that does not compile as matching every path (fail closed)', () => {
    const db = openDatabase(':memory:');
    ensureInstall(db, TEAM_TOKEN);
    const now = Date.now();
    db.insert(tokens).values({ name: 'Old', measurementId: 'G-OLD', apiSecret: 's', ignorePaths: ['^/(?!public)'], createdAt: now, updatedAt: now }).run();
    const [active] = new Tokens(db, { clock: Date.now }).recipients('pageViews');
    expect(active?.ignore.some((pattern) => pattern.test('/public/page'))).toBe(true);
    db.$client.close();
  });

  it('maps each GA event to the switch that governs it', () => {
    expect(['page_view', 'task_event', 'daily_stats', 'installed_app'].map(featureOfEvent)).toEqual([
      'pageViews',
      'taskEvents',
      'dailyStats',
      'dailyStats',
    ]);
  });
});
