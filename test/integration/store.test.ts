import { describe, expect, it } from 'vitest';
import type { Store } from '../../server/store/store.ts';
import type { FirstToken, NewEvent, TokenSettings } from '../../server/store/types.ts';
import { DIALECTS, openTestStore, type TestStore } from '../helpers/app.ts';

const FIRST: FirstToken = { name: 'Team', measurementId: 'G-XXXXXXXXXX', apiSecret: '', ignorePaths: ['^/admin/'], placeholderId: 'G-XXXXXXXXXX' };
const NOW = Date.UTC(2026, 11, 1, 12);
const SETTINGS: TokenSettings = {
  name: 'Property',
  measurementId: 'G-PROP1',
  apiSecret: 'secret',
  sendDailyStats: true,
  sendTaskEvents: true,
  sendPageViews: true,
  ignorePaths: ['^/private/'],
};

const pageView = (tokenId: number, n: number, occurredAt = NOW): NewEvent => ({
  tokenId,
  name: 'page_view',
  params: { page_location: `https://x.invalid/p${n}` },
  device: { category: 'desktop', language: 'en' },
  occurredAt,
});
const taskEvent = (tokenId: number, n: number, occurredAt = NOW): NewEvent => ({ tokenId, name: 'task_event', params: { task: `t${n}`, value: n }, occurredAt });

/** A migrated store with its install and one extra token. */
async function setup(dialect: (typeof DIALECTS)[number]): Promise<TestStore & { tokenId: number }> {
  const opened = await openTestStore(dialect);
  await opened.store.install(FIRST, NOW);
  const token = await opened.store.createToken(SETTINGS, NOW);
  return { ...opened, tokenId: token.id };
}

const claimOf = (store: Store, tokenId: number, owner: string, now = NOW, limit = 100, leaseMs = 30_000) => store.claim({ tokenId, owner, now, leaseMs, limit });

describe.each(DIALECTS)('the store on %s', (dialect) => {
  it('makes the install once, whatever the number of processes starting together, and keeps it', async () => {
    const first = await openTestStore(dialect);
    // Several connections at once stand for several processes starting together.
    const others = await Promise.all([1, 2, 3].map(() => openTestStore(dialect === 'sqlite' ? 'sqlite' : { postgresUrl: first.location })));
    const stores = dialect === 'sqlite' ? [first] : [first, ...others];
    const identities = await Promise.all(stores.map((s) => s.store.install(FIRST, NOW)));
    expect(new Set(identities.map((i) => i.uuid)).size).toBe(1);
    expect(identities[0]?.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(identities[0]?.signingSecret.length).toBeGreaterThanOrEqual(43);
    const tokens = await first.store.listTokens();
    expect(tokens.map((t) => [t.id, t.measurementId, t.ignorePaths])).toEqual([[1, 'G-XXXXXXXXXX', ['^/admin/']]]);
    // A deleted token 1 stays deleted; the next token is not given id 1 again.
    await first.store.deleteToken(1);
    await first.store.install(FIRST, NOW + 1);
    expect(await first.store.listTokens()).toEqual([]);
    expect((await first.store.createToken(SETTINGS, NOW)).id).toBe(2);
    await Promise.all(stores.map((s) => s.store.close()));
  });

  it('keeps tokens: create, update, delete, each moving the version other processes watch', async () => {
    const { store, tokenId } = await setup(dialect);
    const v0 = await store.tokensVersion();
    const updated = await store.updateToken(tokenId, { sendPageViews: false, ignorePaths: ['^/a', '^/b'] }, NOW + 5);
    expect(updated).toMatchObject({ id: tokenId, sendPageViews: false, sendTaskEvents: true, ignorePaths: ['^/a', '^/b'], updatedAt: NOW + 5, heldUntil: 0, failures: 0 });
    expect(await store.tokensVersion()).toBe(v0 + 1);
    expect(await store.updateToken(999, { name: 'x' }, NOW)).toBeUndefined();
    expect(await store.tokensVersion()).toBe(v0 + 1);
    expect(await store.findToken(tokenId)).toEqual(updated);
    expect(await store.deleteToken(tokenId)).toBe(true);
    expect(await store.deleteToken(tokenId)).toBe(false);
    expect(await store.tokensVersion()).toBe(v0 + 2);
    await store.close();
  });

  it('queues events only for tokens that exist, and counts them by name', async () => {
    const { store, tokenId } = await setup(dialect);
    const written = await store.enqueue([pageView(tokenId, 1), pageView(tokenId, 2), taskEvent(tokenId, 1), taskEvent(9999, 2)]);
    expect(Object.fromEntries(written)).toEqual({ page_view: 2, task_event: 1 });
    expect(await store.pendingCount()).toBe(3);
    await store.close();
  });

  it('leases claimed rows: two relays never hold the same row, and settling needs the claim that holds it', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    await store.enqueue(Array.from({ length: 10 }, (_, i) => pageView(tokenId, i, NOW - 1000 + i)));
    const [a, b] = await Promise.all([claimOf(store, tokenId, 'relay-a', NOW, 6), claimOf(store, tokenId, 'relay-b', NOW, 6)]);
    const ids = [...a.rows, ...b.rows].map((r) => r.id);
    expect(ids).toHaveLength(10);
    expect(new Set(ids).size).toBe(10);
    expect(a.rows[0]).toMatchObject({ name: 'page_view', params: { page_location: expect.stringContaining('/p') }, device: { category: 'desktop', language: 'en' } });
    // Nothing is due while leased.
    expect((await claimOf(store, tokenId, 'relay-c', NOW + 1000)).rows).toEqual([]);
    // Only the holder settles: another claim's delete or failure finds nothing.
    const other = await claimOf(store, tokenId, 'relay-c', NOW + 1000);
    expect(await store.delivered({ claim: { ...other, rows: a.rows }, ids: a.rows.map((r) => r.id), now: NOW })).toBe(0);
    expect(await store.delivered({ claim: a, ids: a.rows.map((r) => r.id), now: NOW })).toBe(a.rows.length);
    expect(await store.pendingCount()).toBe(10 - a.rows.length);
    // A lease that runs out lets another relay take the rows; the first holder's late settlement then does nothing.
    const taken = await claimOf(store, tokenId, 'relay-d', NOW + 31_000);
    expect(taken.rows.map((r) => r.id).sort()).toEqual(b.rows.map((r) => r.id).sort());
    expect(await store.delivered({ claim: b, ids: b.rows.map((r) => r.id), now: NOW + 31_000 })).toBe(0);
    expect(await store.delivered({ claim: taken, ids: taken.rows.map((r) => r.id), now: NOW + 31_000 })).toBe(b.rows.length);
    expect(await store.pendingCount()).toBe(0);
    const [counted] = await sql<{ delivered: number }>('SELECT delivered FROM delivery_stats WHERE token_id = ?', [tokenId]);
    expect(Number(counted?.delivered)).toBe(10);
    await store.close();
  });

  it('gives back unsent rows due as they were, and holds a token GA fails for', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([pageView(tokenId, 1, NOW - 500), pageView(tokenId, 2, NOW - 400), taskEvent(tokenId, 3, NOW - 300)]);
    const claim = await claimOf(store, tokenId, 'r');
    const [first, second, third] = claim.rows;
    await store.release(claim, [(first as { id: number }).id]);
    expect((await store.dueTimes()).find((d) => d.tokenId === tokenId)?.dueAt).toBe(NOW - 500);
    await store.retryLater({ claim, ids: [(second as { id: number }).id], now: NOW, nextAttemptAt: NOW + 8_000, error: 'GA answered 503', hold: { until: NOW + 8_000, failures: 1 } });
    await store.failed({ claim, ids: [(third as { id: number }).id], now: NOW, error: 'GA answered 400: bad' });
    const token = await store.findToken(tokenId);
    expect(token).toMatchObject({ heldUntil: NOW + 8_000, failures: 1, lastError: 'GA answered 400: bad' });
    // Held: the token's next due time is its hold, even with a row due now.
    expect((await store.dueTimes()).find((d) => d.tokenId === tokenId)?.dueAt).toBe(NOW + 8_000);
    // A shorter hold asked for by another relay does not shorten it.
    const again = await claimOf(store, tokenId, 'r2');
    await store.retryLater({ claim: again, ids: again.rows.map((r) => r.id), now: NOW, nextAttemptAt: NOW + 1_000, error: 'x', hold: { until: NOW + 1_000, failures: 1 } });
    expect((await store.findToken(tokenId))?.heldUntil).toBe(NOW + 8_000);
    await store.clearHold(tokenId);
    expect(await store.findToken(tokenId)).toMatchObject({ heldUntil: 0, failures: 0 });
    // The admin's retry brings a failed event back, due now, with what waited behind the hold.
    expect((await store.failedEvents(10)).items).toMatchObject([{ event: 'task_event', error: 'GA answered 400: bad', tokenName: 'Property' }]);
    expect(await store.retryFailed({ tokenId, since: NOW - 10_000, now: NOW + 10 })).toBe(1);
    const due = await claimOf(store, tokenId, 'r3', NOW + 10);
    expect(due.rows).toHaveLength(3);
    await store.close();
  });

  it('keeps the bound fairly: page views go first, oldest first; host events stay; leased rows are never taken', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([taskEvent(tokenId, 0, NOW - 10_000)]);
    await store.enqueue(Array.from({ length: 10 }, (_, i) => pageView(tokenId, i, NOW - 9_000 + i)));
    // The two oldest page views are being delivered right now.
    const leased = await store.claim({ tokenId, owner: 'r', now: NOW, leaseMs: 30_000, limit: 3 });
    expect(leased.rows.map((r) => r.name)).toEqual(['task_event', 'page_view', 'page_view']);
    const drops = await store.trimOutbox(5, NOW);
    expect(drops).toEqual([{ reason: 'outbox-full', event: 'page_view', count: 6 }]);
    expect(await store.pendingCount()).toBe(5);
    const left = await claimOf(store, tokenId, 'r2', NOW + 60_000);
    expect(left.rows.map((r) => r.name).sort()).toEqual(['page_view', 'page_view', 'page_view', 'page_view', 'task_event']);
    // The leased ones survived, and the newest unleased page views did.
    const leasedIds = leased.rows.map((r) => r.id);
    expect(left.rows.filter((r) => leasedIds.includes(r.id))).toHaveLength(3);
    expect(await store.dropCounts()).toEqual([{ reason: 'outbox-full', event: 'page_view', count: 6 }]);
    // Host events alone over the bound: the oldest of them go.
    await store.enqueue([taskEvent(tokenId, 1), taskEvent(tokenId, 2)]);
    expect(await store.trimOutbox(2, NOW + 120_000)).toEqual([
      { reason: 'outbox-full', event: 'page_view', count: 4 },
      { reason: 'outbox-full', event: 'task_event', count: 1 },
    ]);
    await store.close();
  });

  it('expires what GA no longer takes, and prunes what the admin no longer needs', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([taskEvent(tokenId, 1, NOW - 80 * 3_600_000), taskEvent(tokenId, 2, NOW)]);
    expect(await store.expire(NOW - 72 * 3_600_000, NOW)).toEqual([{ reason: 'expired', event: 'task_event', count: 1 }]);
    expect((await store.failedEvents(10)).total).toBe(1);
    expect(await store.pruneFailed(NOW - 79 * 3_600_000, 1000)).toBe(1);
    expect(await store.pruneFailed(NOW, 0)).toBe(0);
    const claim = await claimOf(store, tokenId, 'r');
    await store.delivered({ claim, ids: claim.rows.map((r) => r.id), now: NOW });
    expect(await store.hourCounts(0)).toEqual([{ tokenId, hour: NOW - (NOW % 3_600_000), delivered: 1, failed: 0 }]);
    expect(await store.pruneHourCounts(NOW + 3_600_000)).toBe(1);
    expect(await store.hourCounts(0)).toEqual([]);
    await store.close();
  });

  it('records the daily run once per interval, with its events, in one transaction', async () => {
    const { store, tokenId } = await setup(dialect);
    const run = (at: number, onlyIfDue = true) => store.recordDailyRun({ at, onlyIfDue, intervalMs: 86_400_000, events: [taskEvent(tokenId, at)] });
    const results = await Promise.all([run(NOW), run(NOW), run(NOW)]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await store.lastDailyStatsAt()).toBe(NOW);
    expect(await store.pendingCount()).toBe(1);
    expect(await run(NOW + 3_600_000)).toBe(false);
    expect(await run(NOW + 3_600_000, false)).toBe(true);
    expect(await run(NOW + 3_600_000 + 86_400_000)).toBe(true);
    await store.saveHostStats({ users: 3, tokens: 2, apps: ['forum'] }, NOW);
    expect(await store.hostStats()).toEqual({ users: 3, tokens: 2, apps: ['forum'] });
    await store.close();
  });

  it('keeps admin sessions by hash until they expire or are removed', async () => {
    const { store } = await setup(dialect);
    await store.addSession('hash-a', NOW + 1000, NOW);
    expect(await store.hasSession('hash-a', NOW)).toBe(true);
    expect(await store.hasSession('hash-a', NOW + 1000)).toBe(false);
    await store.removeSession('hash-a');
    expect(await store.hasSession('hash-a', NOW)).toBe(false);
    await store.close();
  });

  it('keeps the last requests sent to each token, newest first, bounded', async () => {
    const { store, tokenId } = await setup(dialect);
    for (let i = 0; i < 5; i += 1) await store.recordSent(tokenId, { at: NOW + i, status: 204, events: i + 1, body: `{"n":${i}}` }, 3);
    expect(await store.sentRequests(tokenId, 10)).toEqual([
      { at: NOW + 4, status: 204, events: 5, body: '{"n":4}' },
      { at: NOW + 3, status: 204, events: 4, body: '{"n":3}' },
      { at: NOW + 2, status: 204, events: 3, body: '{"n":2}' },
    ]);
    await store.close();
  });
});
