import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import type { Store } from '../../server/store/store.ts';
import type { TokenSettings } from '../../server/store/types.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { featureOfEvent } from '../../server/tokens/features.ts';
import { Tokens } from '../../server/tokens/tokens.ts';
import { DIALECTS, openTestStore, type TestStore } from '../helpers/app.ts';

const dir = mkdtempSync(join(tmpdir(), 'analytics-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileCounter = 0;

const opened: Store[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((store) => store.close()));
});

function settings(overrides: Partial<TokenSettings> = {}): TokenSettings {
  return {
    name: 'Other',
    measurementId: 'G-OTHER',
    apiSecret: 's',
    sendDailyStats: true,
    sendTaskEvents: true,
    sendPageViews: true,
    ignorePaths: [],
    ...overrides,
  };
}

/** A store with its install, and a second connection to the same data standing for another process. */
async function twoProcesses(dialect: (typeof DIALECTS)[number]): Promise<{ mine: Store; other: Store }> {
  const first: TestStore = await openTestStore(dialect === 'sqlite' ? { sqliteFile: join(dir, `shared-${++fileCounter}.db`) } : 'postgres');
  opened.push(first.store);
  await first.store.install(TEAM_TOKEN, Date.now());
  const second = await openTestStore(dialect === 'sqlite' ? { sqliteFile: first.location } : { postgresUrl: first.location });
  opened.push(second.store);
  return { mine: first.store, other: second.store };
}

describe.each(DIALECTS)('the tokens module on %s', (dialect) => {
  it('sees token changes made by another process sharing the store', async () => {
    const { mine, other } = await twoProcesses(dialect);
    const directory = new Tokens(mine, { clock: Date.now, recheckMs: 0 }); // look for outside changes on every read
    await directory.refresh();
    expect(directory.recipients('pageViews')).toEqual([]); // only the placeholder token 1

    const added = await other.createToken(settings(), Date.now());
    await directory.refresh();
    expect(directory.recipients('pageViews').map((t) => t.token.id)).toEqual([added.id]);

    await other.updateToken(added.id, { sendPageViews: false }, Date.now());
    // A read looks in the background: the change shows up in the reads that follow, without an explicit refresh.
    await vi.waitFor(() => expect(directory.recipients('pageViews')).toEqual([]));
    expect(directory.recipients('taskEvents').map((t) => t.token.id)).toEqual([added.id]);

    await other.deleteToken(added.id);
    await vi.waitFor(() => expect(directory.recipients('taskEvents')).toEqual([]));
  });

  it('looks for outside changes at most once per interval', async () => {
    const { mine, other } = await twoProcesses(dialect);
    const directory = new Tokens(mine, { clock: Date.now, recheckMs: 60_000 });
    await directory.refresh();
    expect(directory.all()).toHaveLength(1);
    await other.createToken(settings({ measurementId: 'G-LATER' }), Date.now());
    expect(directory.all()).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(directory.all()).toHaveLength(1); // not yet: next look in a minute
    // A change made through the module itself is seen at once, and the reload brings the outside one too.
    await directory.update(1, { name: 'Renamed here' });
    expect(directory.all()).toHaveLength(2);
    expect(directory.all().find((t) => t.token.id === 1)?.token.name).toBe('Renamed here');
  });

  it('treats a stored ignore path that does not compile as matching every path (fail closed)', async () => {
    const { store } = await openTestStore(dialect);
    opened.push(store);
    await store.install(TEAM_TOKEN, Date.now());
    // Stored by an older version that took it; the admin refuses it now.
    await store.createToken(settings({ name: 'Old', measurementId: 'G-OLD', ignorePaths: ['^/(?!public)'] }), Date.now());
    const directory = new Tokens(store, { clock: Date.now });
    await directory.refresh();
    const [active, ...others] = directory.recipients('pageViews');
    expect(others).toEqual([]);
    expect(active?.token.measurementId).toBe('G-OLD');
    expect(active?.ignore.some((pattern) => pattern.test('/public/page'))).toBe(true);
  });
});

describe('the tokens module', () => {
  it('maps each GA event to the switch that governs it', () => {
    expect(['page_view', 'task_event', 'daily_stats', 'installed_app'].map(featureOfEvent)).toEqual([
      'pageViews',
      'taskEvents',
      'dailyStats',
      'dailyStats',
    ]);
  });
});
