import { describe, expect, it, vi } from 'vitest';
import type { Config } from '../../server/core/config.ts';
import { trackTask } from '../../server/host-events/task-events.ts';
import { MAX_EVENTS_BODY_BYTES } from '../../server/host-events/events-route.ts';
import type { EventParams } from '../../server/store/types.ts';
import { addTestToken, DIALECTS, makeTestApp, outboxEvents, type TestDatabase, type TestServices } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { validationMessages } from '../../harness/ga-validation.ts';

const KEY = 'events-key: with spaces & symbols!';

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

/** The outbox's rows in the order they were queued, params read back from their JSON. */
async function outboxRows(services: TestServices) {
  const rows = await outboxEvents(services);
  return rows.map((r) => ({ tokenId: r.token_id, name: r.name, params: JSON.parse(r.params) as EventParams }));
}

/** The host's numbers as stored by PUT /api/stats. */
async function storedStats(services: TestServices) {
  const rows = await services.sql<{ id: number; users: number; tokens: number; apps: string; updated_at: number }>('SELECT * FROM host_stats');
  return rows.map((r) => ({ id: r.id, users: r.users, tokens: r.tokens, apps: JSON.parse(r.apps) as string[], updatedAt: r.updated_at }));
}

async function setup(config: Partial<Config> = {}, database: TestDatabase = 'sqlite') {
  const made = await makeTestApp({ database, config: { gaUrl: ga.url, eventsKey: KEY, appVersion: '9.8.7', ...config }, relay: { lingerMs: 10 } });
  const { relay } = made.services;
  // After the test: the relay stops, then the store is closed.
  stopAfterTest({
    async stop() {
      await relay.stop();
      await made.services.store.close();
    },
  });
  const send = (method: 'POST' | 'PUT', path: string, body: unknown, key: string | null = KEY, headers: Record<string, string> = {}) =>
    made.app.request(path, {
      method,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers: { 'Content-Type': 'application/json', ...(key === null ? {} : { Authorization: `Bearer ${key}` }), ...headers },
    });
  const postEvent = (body: unknown, key: string | null = KEY) => send('POST', '/api/events', body, key);
  const queued = () => outboxRows(made.services);
  return { ...made, relay, send, postEvent, queued };
}

describe.each(DIALECTS)('POST /api/events on %s', (database) => {
  it('sends a task event with exactly the given fields, the install UUID and version, and no device', async () => {
    const { services, relay, postEvent, queued } = await setup({}, database);
    const token = await addTestToken(services);
    const res = await postEvent({ namespace: 'billing.invoices', task: 'send_reminders', label: 'nightly', result: 'Success', value: 12 });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ queued: 1 });
    // The 202 comes once the event is stored.
    expect(await queued()).toEqual([
      { tokenId: token.id, name: 'task_event', params: { namespace: 'billing.invoices', task: 'send_reminders', label: 'nightly', result: 'Success', value: 12 } },
    ]);
    await relay.drain();
    expect(ga.delivered()).toEqual([
      {
        measurementId: token.measurementId,
        clientId: services.identity.uuid,
        appVersion: '9.8.7',
        device: undefined,
        name: 'task_event',
        timestampMicros: expect.any(Number),
        params: { namespace: 'billing.invoices', task: 'send_reminders', label: 'nightly', result: 'Success', value: 12 },
      },
    ]);
    expect(await validationMessages(ga)).toEqual([]);
    expect(await queued()).toEqual([]);
  });

  it('honours each token’s switches one by one', async () => {
    const { services, relay, postEvent } = await setup({}, database);
    const all = await addTestToken(services);
    const noTasks = await addTestToken(services, { sendTaskEvents: false });
    const noStats = await addTestToken(services, { sendDailyStats: false });
    const noPages = await addTestToken(services, { sendPageViews: false });
    await addTestToken(services, { sendTaskEvents: false, sendDailyStats: false });

    expect(await (await postEvent({ namespace: 'a', task: 'job' })).json()).toEqual({ queued: 3 });
    expect(await (await postEvent({ namespace: 'a', task: 'count', value: 5, type: 'stats' })).json()).toEqual({ queued: 3 });
    await relay.drain();
    const receivers = (name: string) =>
      ga.delivered().filter((e) => e.name === name).map((e) => e.measurementId).sort();
    expect(receivers('task_event')).toEqual([all, noStats, noPages].map((t) => t.measurementId).sort());
    expect(receivers('daily_stats')).toEqual([all, noTasks, noPages].map((t) => t.measurementId).sort());
    expect(ga.delivered().find((e) => e.name === 'daily_stats')?.params).toEqual({ namespace: 'a', task: 'count', label: '', result: '', value: 5 });
    expect(await validationMessages(ga)).toEqual([]);
  });
});

describe('POST /api/events', () => {
  it('sends a boolean value as 1 or 0 and fills in the defaults', async () => {
    const { services, relay, postEvent } = await setup();
    await addTestToken(services);
    await postEvent({ namespace: 'sync', task: 'mirror', value: true });
    await postEvent({ namespace: 'sync', task: 'mirror', value: false });
    await postEvent({ namespace: 'sync', task: 'mirror' });
    await relay.drain();
    expect(ga.delivered().map((e) => e.params)).toEqual([
      { namespace: 'sync', task: 'mirror', label: '', result: '', value: 1 },
      { namespace: 'sync', task: 'mirror', label: '', result: '', value: 0 },
      { namespace: 'sync', task: 'mirror', label: '', result: '', value: 1 },
    ]);
    expect(await validationMessages(ga)).toEqual([]);
  });

  it("cuts over-long fields at GA's limit, so GA takes them", async () => {
    const { services, relay, postEvent } = await setup();
    await addTestToken(services);
    expect((await postEvent({ namespace: 'n'.repeat(500), task: 't'.repeat(101), label: 'é'.repeat(300) })).status).toBe(202);
    await relay.drain();
    expect(ga.delivered()[0]?.params).toMatchObject({ namespace: 'n'.repeat(100), task: 't'.repeat(100), label: 'é'.repeat(100) });
    expect(await validationMessages(ga)).toEqual([]);
  });

  it('sends nothing, not one GA request, when analytics is disabled', async () => {
    const { services, relay, postEvent, send, queued } = await setup({ disabled: true });
    await addTestToken(services);
    const res = await postEvent({ namespace: 'a', task: 'b' });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ queued: 0 });
    expect((await send('PUT', '/api/stats', { users: 1, tokens: 1, apps: [] })).status).toBe(204);
    expect(await trackTask(services, 'a', 'b', () => 1)).toBe(1);
    relay.start();
    await relay.drain();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await queued()).toEqual([]);
    expect(ga.requests).toEqual([]);
  });

  it.each([
    ['no Authorization header', null],
    ['a wrong key', 'not-the-key'],
    ['the key with a different case', KEY.toUpperCase()],
    ['a prefix of the key', KEY.slice(0, 5)],
    ['an empty key', ''],
  ])('answers 401 to %s and queues nothing', async (_, key) => {
    const { services, postEvent, send, queued } = await setup();
    await addTestToken(services);
    const res = await postEvent({ namespace: 'a', task: 'b' }, key);
    expect(res.status).toBe(401);
    expect(res.headers.get('WWW-Authenticate')).toBe('Bearer');
    expect(await res.json()).toEqual({ error: 'missing or wrong bearer key' });
    expect((await send('PUT', '/api/stats', { users: 1, tokens: 1, apps: [] }, key)).status).toBe(401);
    expect(await queued()).toEqual([]);
    expect(await storedStats(services)).toEqual([]);
  });

  it('answers 401 to another scheme carrying the right key', async () => {
    const { send } = await setup();
    const res = await send('POST', '/api/events', { namespace: 'a', task: 'b' }, null, { Authorization: `Basic ${KEY}` });
    expect(res.status).toBe(401);
  });

  it('is not there at all without ANALYTICS_EVENTS_KEY', async () => {
    const { postEvent, send } = await setup({ eventsKey: undefined });
    expect((await postEvent({ namespace: 'a', task: 'b' })).status).toBe(404);
    expect((await send('PUT', '/api/stats', { users: 1, tokens: 1, apps: [] })).status).toBe(404);
  });

  it.each([
    ['not JSON', '{"namespace": "a", ', /body must be JSON/],
    ['a JSON array', [], /expected object/],
    ['no task', { namespace: 'a' }, /^task: /],
    ['an empty namespace', { namespace: '', task: 'b' }, /^namespace: must not be empty/],
    ['a blank task', { namespace: 'a', task: ' \t ' }, /^task: /],
    ['a control character', { namespace: 'a', task: 'b\u0007' }, /^task: must not contain control characters/],
    ['a number as task', { namespace: 'a', task: 7 }, /^task: /],
    ['a string value', { namespace: 'a', task: 'b', value: '7' }, /^value: /],
    ['a null value', { namespace: 'a', task: 'b', value: null }, /^value: /],
    ['an unknown type', { namespace: 'a', task: 'b', type: 'celery' }, /^type: /],
    ['an unknown field', { namespace: 'a', task: 'b', eventType: 'stats' }, /eventType/],
  ])('answers 400 to %s and queues nothing', async (_, body, message) => {
    const { services, postEvent, queued } = await setup();
    await addTestToken(services);
    const res = await postEvent(body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
    expect(await queued()).toEqual([]);
  });

  it('answers 413 to a body over 16 KiB, with or without a Content-Length', async () => {
    const { services, send, queued } = await setup();
    await addTestToken(services);
    const big = JSON.stringify({ namespace: 'a', task: 'b', label: 'x'.repeat(MAX_EVENTS_BODY_BYTES) });
    const withLength = await send('POST', '/api/events', big, KEY, { 'Content-Length': String(Buffer.byteLength(big)) });
    expect(withLength.status).toBe(413);
    expect(await withLength.json()).toEqual({ error: `body over ${MAX_EVENTS_BODY_BYTES} bytes` });
    expect((await send('POST', '/api/events', big)).status).toBe(413);
    expect((await send('PUT', '/api/stats', big)).status).toBe(413);
    expect(await queued()).toEqual([]);
  });

  it('takes a body sent as form data by a plain curl -d, if it is JSON', async () => {
    const { services, send } = await setup();
    await addTestToken(services);
    const res = await send('POST', '/api/events', '{"namespace":"a","task":"b"}', KEY, { 'Content-Type': 'application/x-www-form-urlencoded' });
    expect(res.status).toBe(202);
  });
});

describe('PUT /api/stats', () => {
  it('stores the latest numbers, app names cleaned', async () => {
    const { services, send } = await setup();
    expect((await send('PUT', '/api/stats', { users: 3, tokens: 2, apps: ['forum'] })).status).toBe(204);
    const res = await send('PUT', '/api/stats', { users: 5, tokens: 4, apps: [' forum', 'forum ', 'billing'] });
    expect(res.status).toBe(204);
    expect(await res.text()).toBe('');
    expect(await storedStats(services)).toEqual([{ id: 1, users: 5, tokens: 4, apps: ['forum', 'billing'], updatedAt: expect.any(Number) }]);
  });

  it.each([
    ['negative users', { users: -1, tokens: 0, apps: [] }, /^users: /],
    ['a fraction', { users: 1, tokens: 0.5, apps: [] }, /^tokens: /],
    ['missing apps', { users: 1, tokens: 0 }, /^apps: /],
    ['apps not strings', { users: 1, tokens: 0, apps: [{}] }, /^apps\.0: /],
    ['a blank app name', { users: 1, tokens: 0, apps: ['ok', ''] }, /^apps\.1: must not be empty/],
    ['a control character in an app name', { users: 1, tokens: 0, apps: ['a\nb'] }, /^apps\.0: /],
    ['not JSON', 'users=1', /body must be JSON/],
    ['an unknown field', { users: 3, tokens: 0, apps: [], extra: 5 }, /"extra"/],
  ])('answers 400 to %s and keeps the previous numbers', async (_, body, message) => {
    const { services, send } = await setup();
    await send('PUT', '/api/stats', { users: 1, tokens: 1, apps: ['kept'] });
    const res = await send('PUT', '/api/stats', body);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toMatch(message);
    expect((await storedStats(services)).map((row) => row.apps)).toEqual([['kept']]);
  });

  it.each(DIALECTS)('answers 400, not 500, to a number past what the database keeps (%s), and keeps the previous numbers', async (database) => {
    const { services, send } = await setup({}, database);
    expect((await send('PUT', '/api/stats', { users: 2_147_483_647, tokens: 1, apps: ['kept'] })).status).toBe(204);
    for (const body of [
      { users: 2_147_483_648, tokens: 1, apps: [] },
      { users: 1, tokens: 3_000_000_000, apps: [] },
    ]) {
      const res = await send('PUT', '/api/stats', body);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/^(users|tokens): /);
    }
    expect(await services.store.hostStats()).toEqual({ users: 2_147_483_647, tokens: 1, apps: ['kept'] });
  });

  it('refuses an unknown field with a 400 naming it, and the daily run still uses the previous numbers', async () => {
    const { services, send } = await setup();
    expect((await send('PUT', '/api/stats', { users: 1, tokens: 2, apps: ['kept'] })).status).toBe(204);
    const res = await send('PUT', '/api/stats', '{"users": 3, "tokens": 4, "apps": [], "extra": 5}');
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: string };
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error).toMatch(/extra/);
    expect(await services.store.hostStats()).toEqual({ users: 1, tokens: 2, apps: ['kept'] });
  });
});

describe('trackTask against GA', () => {
  class PaymentDeclinedError extends Error {}

  it('sends Success with the returned number, and a failure by class name only', async () => {
    const { services, relay, queued } = await setup();
    const token = await addTestToken(services);
    await trackTask(services, 'billing', 'charge_cards', async () => 40);
    await expect(
      trackTask(services, 'billing', 'charge_cards', () => {
        throw new PaymentDeclinedError('card of Jane Doe, 4111 1111 1111 1111, declined');
      }),
    ).rejects.toThrow(PaymentDeclinedError);
    // The reports are queued in the background (the job never waits for them).
    await vi.waitFor(async () => expect(await queued()).toHaveLength(2));
    await relay.drain();
    expect(ga.delivered().map((e) => [e.measurementId, e.name, e.params])).toEqual([
      [token.measurementId, 'task_event', { namespace: 'billing', task: 'charge_cards', label: '', result: 'Success', value: 40 }],
      [token.measurementId, 'task_event', { namespace: 'billing', task: 'charge_cards', label: '', result: 'PaymentDeclinedError', value: 1 }],
    ]);
    expect(ga.requests.map((r) => r.rawBody).join()).not.toMatch(/Jane|4111/);
    expect(await validationMessages(ga)).toEqual([]);
  });
});
