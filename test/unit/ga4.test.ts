import { describe, expect, it } from 'vitest';
import type { OutboxRow } from '../../server/store/schema.ts';
import { retryAfterMs, retryDelay } from '../../server/delivery/backoff.ts';
import { deviceFromUserAgent } from '../../server/ingest/device.ts';
import { buildRequests, clampParams, clampText, mpUrl, pageViewParams, sessionId } from '../../server/delivery/measurement-protocol.ts';
import { deviceKey } from '../../server/delivery/outbox.ts';
import { describeNetworkError } from '../../server/delivery/ga-client.ts';
import { classifyStatus } from '../../server/delivery/relay.ts';
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
    nextAttemptAt: 0,
    status: 'pending',
    lastError: null,
    ...overrides,
  };
}

describe('GA4 requests', () => {
  it('puts at most 25 events in a request, and every request passes GA validation', () => {
    const requests = buildRequests(Array.from({ length: 60 }, (_, i) => row(i + 1)), 'uuid', '1.0.0');
    expect(requests.map((r) => r.body.events.length)).toEqual([25, 25, 10]);
    expect(requests.flatMap((r) => r.ids)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
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
    const requests = buildRequests([pv(1, desktop), pv(2, phone), pv(3, desktop), row(4)], 'uuid', '1');
    expect(requests.map((r) => [r.ids, r.body.device?.category])).toEqual([
      [[1, 3], 'desktop'],
      [[2], 'mobile'],
      [[4], undefined],
    ]);
  });

  it('splits requests that would pass GA size limit', () => {
    const big = (id: number) => row(id, { params: { page_title: 't'.repeat(300), page_location: `https://x.invalid/${'p'.repeat(980)}` } });
    const requests = buildRequests(Array.from({ length: 200 }, (_, i) => big(i + 1)), 'uuid', '1');
    for (const r of requests) expect(Buffer.byteLength(JSON.stringify(r.body))).toBeLessThan(130_000);
    expect(requests.flatMap((r) => r.ids)).toHaveLength(200);
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
