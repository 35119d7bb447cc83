import { describe, expect, it } from 'vitest';
import { unpack } from '../../server/store/sql-packets.ts';
import type { RoundOutcome, Store } from '../../server/store/store.ts';
import type { ClaimRef, FirstToken, NewEvent } from '../../server/store/types.ts';
import { DIALECTS, openTestStore, outboxEvents, type TestStore } from '../helpers/app.ts';

// The events one commit queues for one token under one name share one outbox row (a packet): what a relay claims,
// settles, drops or expires is still each event on its own.

const FIRST: FirstToken = { name: 'Team', measurementId: 'G-PACKETS1', apiSecret: 'secret', ignorePaths: [], placeholderId: 'G-XXXXXXXXXX' };
const NOW = Date.UTC(2026, 11, 1, 12);

const pageView = (tokenId: number, n: number, occurredAt = NOW - 1_000 + n): NewEvent => ({
  tokenId,
  name: 'page_view',
  params: { page_location: `https://x.invalid/p${n}` },
  device: { category: n % 2 === 0 ? 'desktop' : 'mobile', language: 'en' },
  occurredAt,
});
const pathsOf = (rows: Array<{ paramsJson: string }>) => rows.map((r) => (JSON.parse(r.paramsJson) as { page_location: string }).page_location.slice(-3).replace('/', ''));
const claimOf = (store: Store, tokenId: number, owner: string, now = NOW, limit = 100) => store.claim({ tokenId, owner, now, leaseMs: 30_000, limit });
const settle = (store: Store, claim: ClaimRef, now: number, parts: Partial<RoundOutcome>) =>
  store.settle({ claim, now, delivered: [], failed: [], retried: [], ...parts });

async function setup(dialect: (typeof DIALECTS)[number]): Promise<TestStore & { tokenId: number }> {
  const opened = await openTestStore(dialect);
  const identity = await opened.store.install(FIRST, NOW);
  expect(identity.uuid).toBeTruthy();
  const [token] = await opened.store.listTokens();
  return { ...opened, tokenId: (token as { id: number }).id };
}

const rowCount = async (sql: TestStore['sql']) => Number((await sql<{ n: number }>('SELECT count(*) AS n FROM outbox'))[0]?.n);

describe.each(DIALECTS)('packets on %s', (dialect) => {
  it("queues a commit's events for a token in one row, and a relay takes and settles them event by event", async () => {
    const { store, tokenId, sql } = await setup(dialect);
    expect(Object.fromEntries(await store.enqueue(Array.from({ length: 30 }, (_, i) => pageView(tokenId, i))))).toEqual({ page_view: 30 });
    expect(await rowCount(sql)).toBe(1);
    expect(await store.pendingCount()).toBe(30);
    // A process of an earlier version sharing the database (a rolling upgrade) takes only `pending` rows: never a packet.
    expect(await sql("SELECT id FROM outbox WHERE status = 'pending'")).toEqual([]);
    // A packet is claimed whole, even past the limit; each event keeps its own id, time, parameters and device.
    const claim = await claimOf(store, tokenId, 'relay-a', NOW, 10);
    expect(pathsOf(claim.rows)).toEqual(Array.from({ length: 30 }, (_, i) => `p${i}`));
    expect(new Set(claim.rows.map((r) => r.id)).size).toBe(30);
    expect(claim.rows.map((r) => r.occurredAt)).toEqual(Array.from({ length: 30 }, (_, i) => NOW - 1_000 + i));
    expect(claim.rows.map((r) => JSON.parse(r.deviceJson ?? 'null').category)).toEqual(Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? 'desktop' : 'mobile')));
    expect(await settle(store, claim, NOW, { delivered: claim.rows.map((r) => r.id) })).toEqual({ delivered: 30, failed: 0, retried: 0 });
    expect(await rowCount(sql)).toBe(0);
    const [counted] = await sql<{ delivered: number }>('SELECT delivered FROM delivery_stats WHERE token_id = ?', [tokenId]);
    expect(Number(counted?.delivered)).toBe(30);
    await store.close();
  });

  it('a packet GA took in part, the rest held back for a later request, moves the rest to a new packet', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    await store.enqueue(Array.from({ length: 30 }, (_, i) => pageView(tokenId, i)));
    const claim = await claimOf(store, tokenId, 'relay-a');
    const ids = claim.rows.map((r) => r.id);
    expect((await settle(store, claim, NOW, { delivered: ids.slice(0, 25), end: true })).delivered).toBe(25);
    expect(await rowCount(sql)).toBe(1);
    expect(await store.pendingCount()).toBe(5);
    const rest = await claimOf(store, tokenId, 'relay-b');
    expect(pathsOf(rest.rows)).toEqual(['p25', 'p26', 'p27', 'p28', 'p29']);
    // Their devices too, though the events that first carried them in the packet are gone.
    expect(rest.rows.map((r) => JSON.parse(r.deviceJson ?? 'null').category)).toEqual(['mobile', 'desktop', 'mobile', 'desktop', 'mobile']);
    expect(new Set(rest.rows.map((r) => r.deviceKey)).size).toBe(2);
    // Under new ids: the old ones, settled again, count nothing twice and take nothing.
    expect(rest.rows.map((r) => r.id).some((id) => ids.includes(id))).toBe(false);
    expect((await settle(store, rest, NOW, { delivered: ids })).delivered).toBe(0);
    expect(await store.pendingCount()).toBe(5);
    expect((await settle(store, rest, NOW, { delivered: rest.rows.map((r) => r.id) })).delivered).toBe(5);
    expect(await store.pendingCount()).toBe(0);
    await store.close();
  });

  it('a relay that lost the token and settles late never takes what is left of a packet for what it sent', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue(Array.from({ length: 10 }, (_, i) => pageView(tokenId, i)));
    const stuck = await claimOf(store, tokenId, 'relay-a');
    const desktop = stuck.rows.filter((r) => JSON.parse(r.deviceJson ?? 'null').category === 'desktop').map((r) => r.id);
    // Its lease ran out; another relay takes over, GA takes its desktop request, its mobile one waits.
    const taken = await claimOf(store, tokenId, 'relay-b', NOW + 31_000);
    expect((await settle(store, taken, NOW + 31_000, { delivered: desktop, end: true })).delivered).toBe(5);
    expect(await store.pendingCount()).toBe(5);
    // The stuck relay's desktop request got through late: the five mobile events still wait.
    expect((await settle(store, stuck, NOW + 32_000, { delivered: desktop })).delivered).toBe(0);
    expect(await store.pendingCount()).toBe(5);
    expect((await store.tokenCounts(0)).find((c) => c.tokenId === tokenId)?.waiting).toBe(5);
    await store.close();
  });

  it('counts single events and packets together as waiting, for the admin', async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue([0, 1, 2].map((i) => pageView(tokenId, i)));
    await store.enqueue([pageView(tokenId, 3)]);
    expect(await store.pendingCount()).toBe(4);
    expect((await store.tokenCounts(0)).find((c) => c.tokenId === tokenId)).toMatchObject({ waiting: 4, failed: 0 });
    await store.close();
  });

  it('fills several packets from a commit of more than 1,000 events for a token, each event in one, oldest first', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    const events = Array.from({ length: 2_345 }, (_, i) => pageView(tokenId, i, NOW - 10_000 + i));
    await store.enqueue(events);
    const packets = await sql<{ n: number; occurredAt: number; events: string }>('SELECT n, occurred_at AS "occurredAt", events FROM outbox ORDER BY id');
    expect(packets.map((p) => Number(p.n))).toEqual([1_000, 1_000, 345]);
    // Each event's place in its packet runs from 0 in each.
    expect(packets.map((p) => unpack(p.events).map((e) => e.index))).toEqual([1_000, 1_000, 345].map((n) => Array.from({ length: n }, (_, i) => i)));
    // Each packet is due from its own oldest event.
    expect(packets.map((p) => Number(p.occurredAt))).toEqual([NOW - 10_000, NOW - 9_000, NOW - 8_000]);
    const claim = await claimOf(store, tokenId, 'relay-a', NOW, 5_000);
    expect(claim.rows).toHaveLength(2_345);
    expect(new Set(claim.rows.map((r) => r.id)).size).toBe(2_345);
    expect(claim.rows.map((r) => r.occurredAt)).toEqual(events.map((e) => e.occurredAt));
    expect(await settle(store, claim, NOW, { delivered: claim.rows.map((r) => r.id), end: true })).toEqual({ delivered: 2_345, failed: 0, retried: 0 });
    expect(await store.pendingCount()).toBe(0);
    await store.close();
  });

  it('a packet settled in part becomes single events: the delivered go, the refused fail, the put off wait', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    await store.enqueue(Array.from({ length: 10 }, (_, i) => pageView(tokenId, i)));
    const claim = await claimOf(store, tokenId, 'relay-a');
    const ids = claim.rows.map((r) => r.id);
    const hold = { until: NOW + 5_000, failures: 1 };
    expect(
      await settle(store, claim, NOW, {
        delivered: ids.slice(0, 4),
        failed: [{ ids: ids.slice(4, 6), error: 'GA answered 400' }],
        retried: [{ ids: ids.slice(6), error: 'GA answered 503', nextAttemptAt: NOW + 5_000, hold }],
      }),
    ).toEqual({ delivered: 4, failed: 2, retried: 4 });
    const left = await outboxEvents({ sql });
    expect(left.map((r) => [JSON.parse(r.params).page_location.slice(-2), r.status, Number(r.attempts), Number(r.next_attempt_at), r.last_error])).toEqual([
      ['p4', 'failed', 1, NOW - 1_000, 'GA answered 400'],
      ['p5', 'failed', 1, NOW - 1_000, 'GA answered 400'],
      ...[6, 7, 8, 9].map((i) => [`p${i}`, 'pending', 1, NOW + 5_000, 'GA answered 503']),
    ]);
    // Each event kept its own time and device.
    expect(left.map((r) => Number(r.occurred_at))).toEqual([4, 5, 6, 7, 8, 9].map((i) => NOW - 1_000 + i));
    expect(left.map((r) => JSON.parse(r.device ?? 'null').category)).toEqual(['desktop', 'mobile', 'desktop', 'mobile', 'desktop', 'mobile']);
    expect(await store.pendingCount()).toBe(4);
    // The refused are the admin's failed events, each with an id a retry takes.
    const { total, items } = await store.failedEvents(10);
    expect(total).toBe(2);
    expect(items.every((item) => item.id > 0 && item.error === 'GA answered 400')).toBe(true);
    await store.endClaim(claim);
    expect(await store.retryFailed({ tokenId, since: NOW - 10_000, now: NOW + 6_000, ids: [items[0]?.id as number] })).toBe(1);
    const again = await claimOf(store, tokenId, 'relay-b', NOW + 6_000);
    // The one put back (the newest refused, p5) and the four put off, now due.
    expect(pathsOf(again.rows).sort()).toEqual(['p5', 'p6', 'p7', 'p8', 'p9']);
    await store.close();
  });

  it('a relay that lost the token takes out a packet it delivered whole, and leaves one it delivered in part to the new holder', async () => {
    const { store, tokenId, sql } = await setup(dialect);
    await store.enqueue([0, 1, 2, 3, 4].map((i) => pageView(tokenId, i)));
    await store.enqueue([5, 6, 7, 8, 9].map((i) => pageView(tokenId, i)));
    const stuck = await claimOf(store, tokenId, 'relay-a');
    expect(stuck.rows).toHaveLength(10);
    // Its lease ran out: another relay takes the token and the same events.
    const taken = await claimOf(store, tokenId, 'relay-b', NOW + 31_000);
    expect(taken.rows.map((r) => r.id)).toEqual(stuck.rows.map((r) => r.id));
    const ids = stuck.rows.map((r) => r.id);
    expect((await settle(store, stuck, NOW + 31_000, { delivered: ids.slice(0, 7), failed: [{ ids: ids.slice(7), error: 'GA answered 400' }] })).delivered).toBe(5);
    expect(await store.pendingCount()).toBe(5);
    expect(await rowCount(sql)).toBe(1);
    // The new holder settles what it sent: the second packet whole; nothing is counted twice.
    expect((await settle(store, taken, NOW + 31_000, { delivered: ids })).delivered).toBe(5);
    expect(await store.pendingCount()).toBe(0);
    const [counted] = await sql<{ delivered: number; failed: number }>('SELECT delivered, failed FROM delivery_stats WHERE token_id = ?', [tokenId]);
    expect([Number(counted?.delivered), Number(counted?.failed)]).toEqual([10, 0]);
    await store.close();
  });

  it("drops only a packet's switched-off events, trims a packet in part (oldest first), and expires each event by its own age", async () => {
    const { store, tokenId } = await setup(dialect);
    await store.enqueue(Array.from({ length: 6 }, (_, i) => pageView(tokenId, i)));
    const claim = await claimOf(store, tokenId, 'relay-a');
    const ids = claim.rows.map((r) => r.id);
    expect(await store.discard({ claim, ids: ids.slice(0, 2), now: NOW, reason: 'switched-off' })).toEqual([{ reason: 'switched-off', event: 'page_view', count: 2 }]);
    expect(await store.pendingCount()).toBe(4);
    await store.endClaim(claim);

    // The bound: 4 waiting plus 10 new in one packet, 5 allowed. The 4 oldest go first, then the packet's 5 oldest.
    await store.enqueue(Array.from({ length: 10 }, (_, i) => pageView(tokenId, 10 + i, NOW + i)));
    expect(await store.trimOutbox(5, NOW + 100)).toEqual([{ reason: 'outbox-full', event: 'page_view', count: 9 }]);
    expect(await store.pendingCount()).toBe(5);
    expect(pathsOf((await claimOf(store, tokenId, 'relay-b', NOW + 100)).rows)).toEqual(['p15', 'p16', 'p17', 'p18', 'p19']);
    await store.releaseLeases('relay-b');

    // GA's 72-hour limit: of one packet, the events before the cutoff fail, the later one waits.
    const cutoff = NOW + 1_000;
    await store.enqueue([0, 1, 2].map((i) => pageView(tokenId, 30 + i, cutoff - 2 + i * 2)));
    expect(await store.expire(cutoff, NOW + 2_000)).toEqual([{ reason: 'expired', event: 'page_view', count: 6 }]);
    expect(await store.pendingCount()).toBe(2);
    expect(pathsOf((await claimOf(store, tokenId, 'relay-c', NOW + 3_000)).rows)).toEqual(['p31', 'p32']);
    await store.close();
  });
});
