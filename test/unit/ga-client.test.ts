import { describe, expect, it } from 'vitest';
import type { MpBody } from '../../server/delivery/measurement-protocol.ts';
import { describeNetworkError, postToGa } from '../../server/delivery/ga-client.ts';

const BODY: MpBody = {
  client_id: 'c',
  non_personalized_ads: true,
  user_properties: { app_version: { value: '1.0.0' } },
  events: [{ name: 'task_event', timestamp_micros: 1, params: { task: 't' } }],
};
/** The text that goes to GA: the relay serializes once, and what it keeps for the admin is exactly what went. */
const JSON_BODY = JSON.stringify(BODY);
const URL_ = 'http://ga.invalid/mp/collect?measurement_id=G-X&api_secret=s';

/** A fetch that ignores its signal and answers `response()` only after `ms` (or never). */
function deafFetch(ms: number | 'never', response: () => Response = () => new Response(null, { status: 204 })) {
  const calls: Array<{ url: string; init: RequestInit | undefined }> = [];
  let cancelled = 0;
  const fake: typeof fetch = (input, init) => {
    calls.push({ url: String(input), init });
    if (ms === 'never') return new Promise<Response>(() => undefined);
    return new Promise<Response>((resolve) =>
      setTimeout(() => {
        const res = response();
        const cancel = res.body?.cancel.bind(res.body);
        if (res.body && cancel) res.body.cancel = (reason?: unknown) => ((cancelled += 1), cancel(reason));
        resolve(res);
      }, ms),
    );
  };
  return { fake, calls, cancelled: () => cancelled };
}

/** A response whose status arrives at once and whose body never ends. */
function stalledBody(status: number): Response {
  return new Response(new ReadableStream({ start: () => undefined }), { status });
}

async function timed<T>(promise: Promise<T>): Promise<{ ms: number; result: PromiseSettledResult<T> }> {
  const started = Date.now();
  const [result] = await Promise.allSettled([promise]);
  return { ms: Date.now() - started, result: result as PromiseSettledResult<T> };
}

describe('postToGa', () => {
  it('posts the body as JSON and hands back status, text and Retry-After', async () => {
    const { fake, calls } = deafFetch(0, () => new Response('busy', { status: 429, headers: { 'Retry-After': '7' } }));
    expect(await postToGa(URL_, JSON_BODY, { fetch: fake, timeoutMs: 1_000 })).toEqual({ status: 429, text: 'busy', retryAfter: 7_000 });
    expect(calls).toHaveLength(1);
    expect(calls[0]?.init).toMatchObject({ method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON_BODY });
    expect(calls[0]?.init?.signal).toBeInstanceOf(AbortSignal);
  });

  it('sends the JSON text exactly as given, not serialized again', async () => {
    const { fake, calls } = deafFetch(0);
    const spaced = JSON.stringify(BODY, null, 2);
    expect((await postToGa(URL_, spaced, { fetch: fake, timeoutMs: 1_000 })).status).toBe(204);
    expect(calls[0]?.init?.body).toBe(spaced);
  });

  it('gives up at its timeout even when the fetch ignores the abort and never settles', async () => {
    const { fake, calls } = deafFetch('never');
    const { ms, result } = await timed(postToGa(URL_, JSON_BODY, { fetch: fake, timeoutMs: 100 }));
    expect(result.status).toBe('rejected');
    const reason = (result as PromiseRejectedResult).reason as Error;
    expect(reason.name).toBe('TimeoutError');
    expect(describeNetworkError(reason)).toBe('GA did not answer in time');
    expect(ms).toBeGreaterThanOrEqual(95);
    expect(ms).toBeLessThan(500);
    // The request itself was told to stop too, so a fetch that listens frees its connection.
    expect(calls[0]?.init?.signal?.aborted).toBe(true);
  });

  it('leaves a late answer to an abandoned request unread and unreported', async () => {
    const late = deafFetch(200, () => new Response('{}', { status: 200 }));
    const { result } = await timed(postToGa(URL_, JSON_BODY, { fetch: late.fake, timeoutMs: 50 }));
    expect(result.status).toBe('rejected');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(late.cancelled()).toBe(1);
  });

  it('counts a status that arrived in time even when the body then stalls', async () => {
    const { fake } = deafFetch(0, () => stalledBody(200));
    const { ms, result } = await timed(postToGa(URL_, JSON_BODY, { fetch: fake, timeoutMs: 100 }));
    expect(result).toEqual({ status: 'fulfilled', value: { status: 200, text: '', retryAfter: undefined } });
    expect(ms).toBeLessThan(500);
  });

  it('is abandoned at once when its signal aborts, and not sent at all when it already has', async () => {
    const stop = new AbortController();
    const { fake, calls } = deafFetch('never');
    const pending = timed(postToGa(URL_, JSON_BODY, { fetch: fake, timeoutMs: 60_000, signal: stop.signal }));
    setTimeout(() => stop.abort(new Error('stopping')), 50);
    const { ms, result } = await pending;
    expect(ms).toBeLessThan(1_000);
    const reason = (result as PromiseRejectedResult).reason as Error;
    expect(describeNetworkError(reason)).toBe('request abandoned (collector stopping)');

    await expect(postToGa(URL_, JSON_BODY, { fetch: fake, signal: stop.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(calls).toHaveLength(1);
  });

  it('passes a network error on as it came', async () => {
    const failing: typeof fetch = () => Promise.reject(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } }));
    const error: unknown = await postToGa(URL_, JSON_BODY, { fetch: failing, timeoutMs: 1_000 }).catch((e: unknown) => e);
    expect(describeNetworkError(error)).toBe('network error (ECONNREFUSED)');
  });
});
