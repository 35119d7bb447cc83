import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

let ga: FakeGa;
beforeEach(async () => {
  ga = await startFakeGa();
});
afterEach(async () => {
  await ga.close();
});

const event = (name: string, params: Record<string, unknown> = {}) => ({ name, params });

async function validate(body: unknown): Promise<Array<{ fieldPath: string; validationCode: string }>> {
  const res = await fetch(`${ga.url}/debug/mp/collect?measurement_id=G-TEST&api_secret=s`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { validationMessages: Array<{ fieldPath: string; validationCode: string }> }).validationMessages;
}

describe('the fake GA', () => {
  it('answers /mp/collect with 204 and records what it took', async () => {
    const body = { client_id: 'c', events: [event('page_view', { page_title: 'Home' })] };
    const res = await fetch(`${ga.url}/mp/collect?measurement_id=G-ONE&api_secret=secret`, { method: 'POST', body: JSON.stringify(body) });
    expect(res.status).toBe(204);
    expect(ga.delivered()).toEqual([
      expect.objectContaining({ measurementId: 'G-ONE', clientId: 'c', name: 'page_view', params: { page_title: 'Home' } }),
    ]);
  });

  it('finds nothing wrong with a valid body', async () => {
    expect(await validate({ client_id: 'c', events: [event('task_event', { namespace: 'a', value: 1 })] })).toEqual([]);
  });

  it('flags an over-long event name, 26 events and a 101-character value', async () => {
    const longName = await validate({ client_id: 'c', events: [event('a'.repeat(41))] });
    expect(longName).toEqual([expect.objectContaining({ fieldPath: 'events[0].name', validationCode: 'NAME_INVALID' })]);

    const many = await validate({ client_id: 'c', events: Array.from({ length: 26 }, () => event('x')) });
    expect(many).toEqual([expect.objectContaining({ fieldPath: 'events', validationCode: 'EXCEEDED_MAX_ENTITIES' })]);

    const longValue = await validate({ client_id: 'c', events: [event('x', { label: 'v'.repeat(101) })] });
    expect(longValue).toEqual([expect.objectContaining({ fieldPath: 'events[0].params.label', validationCode: 'VALUE_OUT_OF_BOUNDS' })]);
    expect(await validate({ client_id: 'c', events: [event('x', { page_title: 't'.repeat(300) })] })).toEqual([]);
  });

  it('flags reserved names, a missing client id and stale timestamps', async () => {
    const messages = await validate({
      events: [{ name: 'session_start', timestamp_micros: (Date.now() - 73 * 3600_000) * 1000, params: {} }],
    });
    expect(messages.map((m) => m.validationCode).sort()).toEqual(['NAME_RESERVED', 'VALUE_INVALID', 'VALUE_REQUIRED']);
  });

  it('can be told to fail: a status, a hang, a reset', async () => {
    const post = () => fetch(`${ga.url}/mp/collect?measurement_id=G&api_secret=s`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(500) });
    ga.setMode({ kind: 'status', status: 503 });
    expect((await post()).status).toBe(503);
    ga.setMode({ kind: 'hang' });
    await expect(post()).rejects.toThrow(/abort|timeout/i);
    ga.setMode({ kind: 'reset' });
    await expect(post()).rejects.toThrow(/fetch failed/);
    ga.setMode({ kind: 'ok' });
    expect((await post()).status).toBe(204);
    expect(ga.accepted()).toHaveLength(1);
  });

  it('can be a black hole: every request taken, none answered, the connection kept open until the client gives up', async () => {
    ga.setMode({ kind: 'black-hole' });
    const controller = new AbortController();
    const held = fetch(`${ga.url}/mp/collect?measurement_id=G&api_secret=s`, { method: 'POST', body: '{}', signal: controller.signal });
    const validation = fetch(`${ga.url}/debug/mp/collect?measurement_id=G&api_secret=s`, { method: 'POST', body: '{}', signal: controller.signal });
    held.catch(() => undefined);
    validation.catch(() => undefined);
    await ga.waitFor(() => ga.requests.length === 2);
    // GA answers new requests again; the ones it took stay unanswered.
    ga.setMode({ kind: 'ok' });
    const fresh = await fetch(`${ga.url}/mp/collect?measurement_id=G&api_secret=s`, { method: 'POST', body: '{}' });
    expect(fresh.status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(ga.requests.map((r) => [r.path, r.answer, r.abandonedAt])).toEqual([
      ['/mp/collect', 'black-hole', undefined],
      ['/debug/mp/collect', 'black-hole', undefined],
      ['/mp/collect', 204, undefined],
    ]);
    controller.abort();
    await expect(held).rejects.toThrow(/abort/i);
    await ga.waitFor(() => ga.requests.slice(0, 2).every((r) => r.abandonedAt !== undefined), 2_000);
    expect(ga.accepted()).toHaveLength(1);
  });
});
