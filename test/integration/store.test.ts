import { describe, expect, it } from 'vitest';
import type { RoundOutcome, Store } from '../../server/store/store.ts';
import type { ClaimRef, FirstToken, NewEvent, TokenSettings } from '../../server/store/types.ts';
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


/** One outcome of a claim's requests, settled as the relay settles a round. */
const outcome = (claim: ClaimRef, now: number, parts: Partial<RoundOutcome>): RoundOutcome => ({
  claim,
  now,
  delivered: [],
  failed: [],
  retried: [],
  ...parts,
});
const delivered = async (store: Store, claim: ClaimRef, ids: number[], now: number) => (await store.settle(outcome(claim, now, { delivered: ids }))).delivered;
const failed = async (store: Store, claim: ClaimRef, ids: number[], now: number, error: string) =>
  (await store.settle(outcome(claim, now, { failed: [{ ids, error }] }))).failed;
const retryLater = async (store: Store, claim: ClaimRef, ids: number[], now: number, nextAttemptAt: number, error: string, hold: { until: number; failures: number }) =>
  (await store.settle(outcome(claim, now, { retried: [{ ids, error, nextAttemptAt, hold }] }))).retried;

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

  it('leases a token to one claim at a time; a lease that runs out is taken over, and settling counts nothing twice', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    // Queued one by one, each in a row of its own (events queued together share a packet: see below).
    for (let i = 0; i < 10; i += 1) await store.enqueue([pageView(tokenId, i, NOW - 1000 + i)]);
    // Two relays at once: one gets the token's events, the other nothing.
    const [a, b] = await Promise.all([claimOf(store, tokenId, 'relay-a', NOW, 6), claimOf(store, tokenId, 'relay-b', NOW, 6)]);
    const [holder, other] = a.rows.length > 0 ? [a, b] : [b, a];
    expect(holder.rows).toHaveLength(6);
    expect(other.rows).toEqual([]);
    // Parameters and device come as the JSON text they were stored as, to go into a request as they are.
    expect(holder.rows[0]).toMatchObject({ name: 'page_view', paramsJson: expect.stringContaining('/p') });
    expect(JSON.parse(holder.rows[0]?.deviceJson ?? 'null')).toEqual({ category: 'desktop', language: 'en' });
    // While leased, nobody else gets the token.
    expect((await claimOf(store, tokenId, 'relay-c', NOW + 1000)).rows).toEqual([]);
    // A claim that lost the token may not hold it back or fail its rows.
    const ids = holder.rows.map((r) => r.id);
    expect(await failed(store, other, ids, NOW, 'x')).toBe(0);
    expect(await retryLater(store, other, ids, NOW, NOW + 1, 'x', { until: 0, failures: 0 })).toBe(0);
    // The holder delivers two rows and gets stuck; its lease runs out and another relay takes the token over.
    expect(await delivered(store, holder, ids.slice(0, 2), NOW)).toBe(2);
    const taken = await claimOf(store, tokenId, 'relay-d', NOW + 31_000, 100);
    expect(taken.rows.map((r) => r.id).sort()).toEqual([...ids.slice(2), ...(await sql<{ id: number }>('SELECT id FROM outbox WHERE id NOT IN (' + ids.join(',') + ')')).map((r) => Number(r.id))].sort());
    // Both deliver the same rows (the stuck request got through late): each row leaves and is counted once.
    expect(await delivered(store, taken, taken.rows.map((r) => r.id), NOW + 31_000)).toBe(8);
    expect(await delivered(store, holder, ids.slice(2), NOW + 31_000)).toBe(0);
    expect(await store.pendingCount()).toBe(0);
    const [counted] = await sql<{ delivered: number }>('SELECT delivered FROM delivery_stats WHERE token_id = ?', [tokenId]);
    expect(Number(counted?.delivered)).toBe(10);
    // Given back, the token is free at once.
    await store.endClaim(taken);
    await store.enqueue([pageView(tokenId, 99, NOW)]);
    expect((await claimOf(store, tokenId, 'relay-e', NOW + 31_001)).rows).toHaveLength(1);
    await store.close();
  });

  it('gives the lease back at once when nothing is due, and with the settlement that ends a claim', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([pageView(tokenId, 1, NOW + 60_000)]);
    // Nothing due yet: the claim holds nothing, so another relay is not kept waiting for a lease.
    expect((await claimOf(store, tokenId, 'relay-a', NOW)).rows).toEqual([]);
    await store.enqueue([pageView(tokenId, 2, NOW)]);
    await store.enqueue([pageView(tokenId, 3, NOW)]);
    const taken = await claimOf(store, tokenId, 'relay-b', NOW, 1);
    expect(taken.rows).toHaveLength(1);
    // A settlement that ends the claim frees the token in the same transaction, long before its lease runs out.
    await store.settle(outcome(taken, NOW, { delivered: taken.rows.map((r) => r.id), end: true }));
    expect((await claimOf(store, tokenId, 'relay-c', NOW + 1_000)).rows).toHaveLength(1);
    await store.close();
  });

  it("ends an owner's leases at once, and only that owner's", async () => {
    const { store, tokenId } = await setup(dialect);
    const second = (await store.createToken({ ...SETTINGS, name: 'Second', measurementId: 'G-SECOND' }, NOW)).id;
    await store.enqueue([pageView(tokenId, 1, NOW), pageView(second, 2, NOW)]);
    expect((await claimOf(store, tokenId, 'host:1:aa', NOW)).rows).toHaveLength(1);
    // An owner whose name starts like the first one's is someone else.
    expect((await claimOf(store, second, 'host:1:aab', NOW)).rows).toHaveLength(1);
    expect(await store.releaseLeases('host:1:aa')).toBe(1);
    expect((await claimOf(store, tokenId, 'relay-b', NOW + 1)).rows).toHaveLength(1);
    expect((await claimOf(store, second, 'relay-b', NOW + 1)).rows).toEqual([]);
    await store.close();
  });

  it('leaves unsent rows due as they were, and holds a token GA fails for', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([pageView(tokenId, 1, NOW - 500), pageView(tokenId, 2, NOW - 400), taskEvent(tokenId, 3, NOW - 300)]);
    const claim = await claimOf(store, tokenId, 'r');
    const [, second, third] = claim.rows;
    await store.endClaim(claim);
    expect((await store.dueTimes()).find((d) => d.tokenId === tokenId)?.dueAt).toBe(NOW - 500);
    const again = await claimOf(store, tokenId, 'r1');
    await retryLater(store, again, [(second as { id: number }).id], NOW, NOW + 8_000, 'GA answered 503', { until: NOW + 8_000, failures: 1 });
    await failed(store, again, [(third as { id: number }).id], NOW, 'GA answered 400: bad');
    await store.endClaim(again);
    const token = await store.findToken(tokenId);
    expect(token).toMatchObject({ heldUntil: NOW + 8_000, failures: 1, lastError: 'GA answered 400: bad' });
    // Held: the token's next due time is its hold, even with a row due now.
    expect((await store.dueTimes()).find((d) => d.tokenId === tokenId)?.dueAt).toBe(NOW + 8_000);
    // A shorter hold asked for by another relay does not shorten it.
    const third2 = await claimOf(store, tokenId, 'r2');
    await retryLater(store, third2, third2.rows.map((r) => r.id), NOW, NOW + 1_000, 'x', { until: NOW + 1_000, failures: 1 });
    await store.endClaim(third2);
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
    for (let i = 0; i < 10; i += 1) await store.enqueue([pageView(tokenId, i, NOW - 9_000 + i)]);
    // The task event and the two oldest page views are being delivered right now.
    const leased = await store.claim({ tokenId, owner: 'r', now: NOW, leaseMs: 30_000, limit: 3 });
    expect(leased.rows.map((r) => r.name)).toEqual(['task_event', 'page_view', 'page_view']);
    const drops = await store.trimOutbox(5, NOW);
    expect(drops).toEqual([{ reason: 'outbox-full', event: 'page_view', count: 6 }]);
    expect(await store.pendingCount()).toBe(5);
    await store.endClaim(leased);
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
    await delivered(store, claim, claim.rows.map((r) => r.id), NOW);
    await store.endClaim(claim);
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
    const { store, tokenId, sql } = await setup(dialect);
    for (let i = 0; i < 40; i += 1) await store.recordSent(tokenId, [{ at: NOW + i, status: 204, events: i + 1, body: `{"n":${i}}` }], 3);
    // Trimmed with each write: never more than `keep` stay (the bound checked is the looser one it once had).
    const [{ n }] = (await sql<{ n: number }>('SELECT count(*) AS n FROM sent_requests')) as [{ n: number }];
    expect(Number(n)).toBeLessThanOrEqual(3 + 16);
    expect(await store.sentRequests(tokenId, 3)).toEqual([
      { at: NOW + 39, status: 204, events: 40, body: '{"n":39}' },
      { at: NOW + 38, status: 204, events: 39, body: '{"n":38}' },
      { at: NOW + 37, status: 204, events: 38, body: '{"n":37}' },
    ]);
    await store.close();
  });

  it('lists the requests sent by the time GA answered, whatever order they were written in', async () => {
    const { store, tokenId } = await setup(dialect);
    // Two relays taking turns at one token: the second wrote its request first, the first a moment later.
    await store.recordSent(tokenId, [{ at: NOW + 20, status: 204, events: 1, body: '{"relay":2}' }], 200);
    await store.recordSent(tokenId, [{ at: NOW + 10, status: 204, events: 1, body: '{"relay":1,"n":1}' }, { at: NOW + 11, status: 204, events: 1, body: '{"relay":1,"n":2}' }], 200);
    expect((await store.sentRequests(tokenId, 200)).map((r) => r.body)).toEqual(['{"relay":2}', '{"relay":1,"n":2}', '{"relay":1,"n":1}']);
    await store.close();
  });

  it('keeps the newest requests by the time GA answered when older ones are written last', async () => {
    const { store, tokenId } = await setup(dialect);
    const requests = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ at: NOW + from + i, status: 204, events: 1, body: `{"at":${from + i}}` }));
    // One relay writes its 50 newest at once; another then writes 200 it held, all older.
    await store.recordSent(tokenId, requests(1_000, 50), 200);
    await store.recordSent(tokenId, requests(0, 200), 200);
    const kept = await store.sentRequests(tokenId, 200);
    // All 50 newest, then the newest 150 of the older ones.
    expect(kept.map((r) => r.at - NOW)).toEqual([...requests(50, 150), ...requests(1_000, 50)].map((r) => r.at - NOW).reverse());
    await store.close();
  });
});
