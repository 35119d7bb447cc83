import { describe, expect, it } from 'vitest';
import type { EventParams, OutboxRow } from '../../server/store/types.ts';
import { retryAfterMs, retryDelay } from '../../server/delivery/backoff.ts';
import { deviceFromUserAgent } from '../../server/ingest/device.ts';
import { buildRequests, clampParams, clampText, GA_LIMITS, mpUrl, pageViewParams, sessionId, type MpRequest } from '../../server/delivery/measurement-protocol.ts';
import { deviceKey } from '../../server/store/event-batch.ts';
import { describeNetworkError } from '../../server/delivery/ga-client.ts';
import { chooseRequests, classifyStatus } from '../../server/delivery/token-round.ts';
import { validateMpBody } from '../../harness/fake-ga.ts';

const NOW = Date.UTC(2026, 10, 27, 10, 44, 12);

function row(id: number, overrides: Partial<OutboxRow> = {}): OutboxRow {
  return {
    id,
    tokenId: 1,
    name: 'task_event',
    params: { namespace: 'app.jobs', task: 'sync', label: '', result: 'Success', value: 1 },
    device: null,
    deviceKey: '',
    occurredAt: NOW,
    attempts: 0,
    dueAt: NOW,
    ...overrides,
  };
}

describe('GA4 requests', () => {
  it('puts at most 25 events in a request, and every request passes GA validation', () => {
    const requests = buildRequests(Array.from({ length: 60 }, (_, i) => row(i + 1)), 'uuid', '1.0.0');
    expect(requests.map((r) => r.body.events.length)).toEqual([25, 25, 10]);
    expect(requests.flatMap((r) => r.ids)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    // 25 events are a full request; the rest is partial (more may join it).
    expect(requests.map((r) => r.full)).toEqual([true, true, false]);
    expect(requests.map((r) => r.oldestAt)).toEqual([NOW, NOW, NOW]);
    for (const r of requests) {
      const json = JSON.stringify(r.body);
      expect(validateMpBody(JSON.parse(json), Buffer.byteLength(json), NOW)).toEqual([]);
      expect(r.body).toMatchObject({ client_id: 'uuid', non_personalized_ads: true, user_properties: { app_version: { value: '1.0.0' } } });
      expect(r.body.device).toBeUndefined();
      expect(r.body.events[0]?.timestamp_micros).toBe(NOW * 1000);
    }
  });

  it('groups page views by device, since the device belongs to the whole request', () => {
    const desktop = deviceFromUserAgent('Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36', 'en');
    const phone = deviceFromUserAgent('Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1', 'de');
    expect(phone).toEqual({ category: 'mobile', language: 'de', operating_system: 'iOS', operating_system_version: '17.1', browser: 'Mobile Safari', browser_version: '17.1' });
    const pv = (id: number, device: typeof desktop) =>
      row(id, { name: 'page_view', params: pageViewParams({ path: '/', title: 'T', language: device.language }, 'https://x.invalid', NOW), device, deviceKey: deviceKey(device) });
    const requests = buildRequests([pv(1, desktop), pv(2, phone), { ...pv(3, desktop), occurredAt: NOW - 5_000 }, row(4)], 'uuid', '1');
    expect(requests.map((r) => [r.ids, r.body.device?.category, r.full, r.oldestAt])).toEqual([
      [[1, 3], 'desktop', false, NOW - 5_000], // its oldest event, wherever it is in the request
      [[2], 'mobile', false, NOW],
      [[4], undefined, false, NOW],
    ]);
  });

  it('splits requests that would pass GA size limit', () => {
    const big = (id: number) => row(id, { params: { page_title: 't'.repeat(300), page_location: `https://x.invalid/${'p'.repeat(980)}` } });
    const requests = buildRequests(Array.from({ length: 200 }, (_, i) => big(i + 1)), 'uuid', '1');
    for (const r of requests) expect(Buffer.byteLength(JSON.stringify(r.body))).toBeLessThan(130_000);
    expect(requests.flatMap((r) => r.ids)).toHaveLength(200);
  });

  it('fills a request up to GA size limit in bytes, not in a bound on them', () => {
    // 25 parameters of 100 ASCII characters: about 3.6 kB an event, 90 kB for 25, under GA's limit. Three bytes a
    // character (the bound that spares counting ordinary requests) would make them 270 kB.
    const params: EventParams = {};
    for (let i = 0; i < 25; i++) params[`p${String(i).padStart(2, '0')}_${'x'.repeat(36)}`] = 'a'.repeat(100);
    const requests = buildRequests(Array.from({ length: 50 }, (_, i) => row(i + 1, { params })), 'uuid', '1');
    expect(requests.map((r) => r.ids.length)).toEqual([25, 25]);
    for (const r of requests) {
      const bytes = Buffer.byteLength(JSON.stringify(r.body));
      expect(bytes).toBeGreaterThan(GA_LIMITS.requestBytes / 3);
      expect(bytes).toBeLessThanOrEqual(GA_LIMITS.requestBytes);
    }
  });

  it('calls a request that the size limit closed full, though it holds fewer than 25 events', () => {
    // 25 parameters of 100 three-byte characters: about 10 kB an event, so GA's size limit closes a request first.
    const params: EventParams = { page_title: 't'.repeat(300), page_location: `https://x.invalid/${'p'.repeat(980)}` };
    for (let i = 0; i < 23; i++) params[`p${String(i).padStart(2, '0')}_${'x'.repeat(36)}`] = '€'.repeat(100);
    const requests = buildRequests(Array.from({ length: 30 }, (_, i) => row(i + 1, { params })), 'uuid', '1');
    expect(requests.length).toBeGreaterThan(2);
    const [first] = requests;
    expect(first?.ids.length).toBeLessThan(GA_LIMITS.eventsPerRequest);
    expect(first?.full).toBe(true);
    expect(requests.at(-1)?.full).toBe(false);
    expect(requests.flatMap((r) => r.ids)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    for (const r of requests) {
      const json = JSON.stringify(r.body);
      expect(Buffer.byteLength(json)).toBeLessThanOrEqual(GA_LIMITS.requestBytes);
      expect(validateMpBody(JSON.parse(json), Buffer.byteLength(json), NOW)).toEqual([]);
    }
  });

  it('cuts values to GA limits and drops invalid parameter names', () => {
    const params = clampParams({ label: 'l'.repeat(150), page_title: 't'.repeat(400), page_location: 'p'.repeat(1200), 'bad name': 'x', value: Number.NaN });
    expect(params).toEqual({ label: 'l'.repeat(100), page_title: 't'.repeat(300), page_location: 'p'.repeat(1000), value: 0 });
    expect(clampText('ab😀', 3)).toBe('ab'); // never half a surrogate pair
  });

  it('gives page views of one 30-minute window one session id, the same after a restart', () => {
    expect(sessionId(NOW)).toBe(Date.UTC(2026, 10, 27, 10, 30) / 1000);
    expect(sessionId(NOW + 10 * 60_000)).toBe(sessionId(NOW));
    expect(sessionId(NOW + 20 * 60_000)).not.toBe(sessionId(NOW));
  });

  it('puts the secret only in the query string of the collect URL', () => {
    expect(mpUrl('https://ga.example', { measurementId: 'G-1', apiSecret: 's&x' })).toBe('https://ga.example/mp/collect?measurement_id=G-1&api_secret=s%26x');
    expect(mpUrl('https://ga.example', { measurementId: 'G-1', apiSecret: 's' }, true)).toContain('/debug/mp/collect?');
  });
});

describe('which requests go now (chooseRequests)', () => {
  const LINGER = 500;
  /** A full request (25 events) and a partial one (3 events), each with its oldest event at `oldestAt`. */
  function requests(oldestAt: number): { full: MpRequest; partial: MpRequest } {
    const full = buildRequests(Array.from({ length: 25 }, (_, i) => row(i + 1, { occurredAt: oldestAt })), 'uuid', '1');
    const partial = buildRequests(Array.from({ length: 3 }, (_, i) => row(100 + i, { occurredAt: oldestAt + i })), 'uuid', '1');
    expect(full.map((r) => r.full)).toEqual([true]);
    expect(partial.map((r) => r.full)).toEqual([false]);
    return { full: full[0] as MpRequest, partial: partial[0] as MpRequest };
  }

  it('sends a full request at once', () => {
    const { full } = requests(NOW);
    expect(chooseRequests([full], NOW, LINGER, false)).toEqual({ send: [full], wait: [] });
  });

  it('holds a partial request back until its oldest event is lingerMs old', () => {
    const { full, partial } = requests(NOW);
    expect(chooseRequests([full, partial], NOW, LINGER, false)).toEqual({ send: [full], wait: [partial] });
    expect(chooseRequests([partial], NOW + LINGER - 1, LINGER, false)).toEqual({ send: [], wait: [partial] });
    expect(chooseRequests([partial], NOW + LINGER, LINGER, false)).toEqual({ send: [partial], wait: [] });
    // Its oldest event counts, not its newest: events that joined later do not hold it back longer.
    const older = requests(NOW - LINGER).partial;
    expect(older.oldestAt).toBe(NOW - LINGER);
    expect(chooseRequests([older], NOW, LINGER, false)).toEqual({ send: [older], wait: [] });
  });

  it('sends everything when flushing (drain, shutdown)', () => {
    const { full, partial } = requests(NOW);
    expect(chooseRequests([partial, full], NOW, LINGER, true)).toEqual({ send: [partial, full], wait: [] });
  });

  it('holds nothing back with no linger', () => {
    const { partial } = requests(NOW);
    expect(chooseRequests([partial], NOW, 0, false)).toEqual({ send: [partial], wait: [] });
  });
});

describe('retries', () => {
  it('backs off exponentially with jitter, capped at ten minutes', () => {
    expect(retryDelay(0, () => 0)).toBe(500);
    expect(retryDelay(0, () => 1)).toBe(1000);
    expect(retryDelay(3, () => 1)).toBe(8000);
    expect(retryDelay(50, () => 1)).toBe(600_000);
    const spread = new Set(Array.from({ length: 20 }, () => retryDelay(4)));
    expect(spread.size).toBeGreaterThan(1);
  });

  it('honours Retry-After in seconds or as a date', () => {
    expect(retryAfterMs('30', NOW)).toBe(30_000);
    expect(retryAfterMs(new Date(NOW + 5000).toUTCString(), NOW)).toBe(5000);
    expect(retryAfterMs(null, NOW)).toBeUndefined();
    expect(retryAfterMs('soon', NOW)).toBeUndefined();
  });

  it('retries 429, 408 and 5xx, keeps other 4xx as failed', () => {
    expect([200, 204, 429, 408, 500, 503, 400, 401, 403, 404].map(classifyStatus)).toEqual([
      'delivered', 'delivered', 'retry', 'retry', 'retry', 'retry', 'failed', 'failed', 'failed', 'failed',
    ]);
  });

  it('describes network errors without the URL', () => {
    const error = new TypeError('fetch failed', { cause: { code: 'ECONNRESET' } });
    expect(describeNetworkError(error)).toBe('network error (ECONNRESET)');
    expect(describeNetworkError(new DOMException('x', 'TimeoutError'))).toBe('GA did not answer in time');
  });
});
