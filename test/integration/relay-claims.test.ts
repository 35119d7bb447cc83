import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { addTestToken, DIALECTS, makeTestServices, queueEvents, until, type TestServices } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const dir = mkdtempSync(join(tmpdir(), 'analytics-claims-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const DEVICE = { category: 'desktop', language: 'en', browser: 'Chrome', browser_version: '126' };

function stopped(services: TestServices): TestServices {
  stopAfterTest({
    async stop() {
      await services.relay.stop();
      await services.store.close();
    },
  });
  return services;
}

describe.each(DIALECTS)('relays sharing one %s store', (dialect) => {
  it('a lease that runs out while its relay is stuck lets another relay deliver; the late answer delivers nothing twice', async () => {
    let release: (() => void) | undefined;
    let stuckCalls = 0;
    // A relay whose GA request gets stuck (and ignores its timeout) until told, then gets GA's 204.
    const stuckFetch: typeof fetch = () => {
      stuckCalls += 1;
      return new Promise((resolve) => (release = () => resolve(new Response(null, { status: 204 }))));
    };
    const database = dialect === 'sqlite' ? { sqliteFile: join(dir, `lease-${Date.now()}.db`) } : 'postgres';
    const relay = { leaseMs: 1_000, lingerMs: 0 };
    const stuck = stopped(await makeTestServices({ database, config: { gaUrl: ga.url }, fetch: stuckFetch, relay: { ...relay, timeoutMs: 60_000 } }));
    // A second process on the same data: its own connection.
    const same = dialect === 'sqlite' ? database : { postgresUrl: stuck.location };
    const other = stopped(await makeTestServices({ database: same, config: { gaUrl: ga.url }, relay }));
    const token = await addTestToken(stuck);
    await queueEvents(stuck, [{ tokenId: token.id, name: 'task_event', params: { namespace: 'n', task: 'stuck', value: 1 } }]);

    const stuckRound = stuck.relay.drain();
    await until(() => stuckCalls === 1);
    // The lease still holds: nobody else may send the event.
    await other.relay.drain();
    expect(ga.delivered()).toEqual([]);
    await sleep(1_100);
    await other.relay.drain();
    expect(ga.delivered().map((e) => e.params.task)).toEqual(['stuck']);

    // The stuck request finally gets GA's 204: its claim was taken over, so nothing is counted or removed twice.
    release?.();
    await stuckRound;
    expect(await stuck.outbox.depth()).toBe(0);
    const [counted] = await stuck.sql<{ n: number }>('SELECT sum(delivered) AS n FROM delivery_stats');
    expect(Number(counted?.n)).toBe(1);
    const deliveredBy = async (s: TestServices) => (await s.metrics.eventsDelivered.get()).values.reduce((sum, v) => sum + v.value, 0);
    expect(await deliveredBy(stuck)).toBe(0);
    expect(await deliveredBy(other)).toBe(1);
  });

  it('fills requests in a burst: a partial request waits for its linger while more events arrive', async () => {
    const services = stopped(await makeTestServices({ database: dialect, config: { gaUrl: ga.url }, relay: { lingerMs: 300 } }));
    const token = await addTestToken(services);
    services.relay.start();
    // 400 events in bursts of 8 every 8 ms (about 1,000 a second): faster than a round takes.
    for (let burst = 0; burst < 50; burst += 1) {
      const events = Array.from({ length: 8 }, (_, i) => ({ tokenId: token.id, name: 'page_view', params: { page_location: `https://x.invalid/b${burst}-${i}` }, device: DEVICE, occurredAt: services.clock() }));
      void services.outbox.add(events);
      await sleep(8);
    }
    await ga.waitFor(() => ga.delivered().length === 400, 10_000);
    const sizes = ga.accepted().map((r) => r.body?.events?.length ?? 0);
    // 16 full requests; a partial one only at the end, after its linger.
    expect(sizes.length).toBeLessThanOrEqual(17);
    expect(sizes.slice(0, -1).every((n) => n === 25)).toBe(true);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(400);
  });

  it('sends a partial request once its oldest event has waited the linger, not before', async () => {
    const services = stopped(await makeTestServices({ database: dialect, config: { gaUrl: ga.url }, relay: { lingerMs: 400 } }));
    const token = await addTestToken(services);
    services.relay.start();
    const queuedAt = Date.now();
    await queueEvents(services, [{ tokenId: token.id, name: 'task_event', params: { namespace: 'n', task: 'alone', value: 1 } }]);
    await ga.waitFor(() => ga.delivered().length === 1, 5_000);
    const waited = Date.now() - queuedAt;
    expect(waited).toBeGreaterThanOrEqual(380);
    // No later than the linger plus a round.
    expect(waited).toBeLessThan(400 + 1_500);
    expect(ga.requests).toHaveLength(1);
  });
});
