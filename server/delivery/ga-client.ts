import { retryAfterMs } from './backoff.ts';
import type { MpBody } from './measurement-protocol.ts';

/** How long a GA request may take, from connecting to the last byte of the answer, unless told otherwise. */
export const DEFAULT_GA_TIMEOUT_MS = 10_000;

/** GA's answer to one request. */
export interface GaAnswer {
  status: number;
  /** The body as text; '' when it could not be read in time (the status still counts: GA did answer). */
  text: string;
  /** The wait GA asked for in `Retry-After`, in milliseconds, if any. */
  retryAfter?: number;
}

/** How one request to GA is made. */
export interface GaRequestOptions {
  /** Past this the request is abandoned and fails with a `TimeoutError`. */
  timeoutMs?: number;
  /** Abandons the request at once when aborted (it then fails with an `AbortError`). */
  signal?: AbortSignal;
  /** The fetch to send with (tests hand in their own); the global one by default. */
  fetch?: typeof fetch;
}

/**
 * POSTs `body` as JSON to GA and reads the answer, settling within `timeoutMs` whatever the network, the
 * fetch implementation or the garbage collector do. Rejects on a network error, the timeout or `signal`.
 * @example const { status } = await postToGa(mpUrl(gaUrl, token), body, { timeoutMs: 10_000, signal });
 */
export function postToGa(url: string, body: MpBody, options: GaRequestOptions = {}): Promise<GaAnswer> {
  const { timeoutMs = DEFAULT_GA_TIMEOUT_MS, signal, fetch: send = globalThis.fetch } = options;
  return new Promise<GaAnswer>((resolve, reject) => {
    const controller = new AbortController();
    let answered: Omit<GaAnswer, 'text'> | undefined;
    let settled = false;
    const settle = (done: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', abandon);
      done();
    };
    const giveUp = (reason: DOMException) => {
      // With the status in, GA has answered: only the rest of its body is lost, and that changes nothing.
      if (answered) {
        const { status, retryAfter } = answered;
        settle(() => resolve({ status, text: '', retryAfter }));
      } else {
        settle(() => reject(reason));
      }
      controller.abort(reason);
    };
    const abandon = () => giveUp(new DOMException('request abandoned', 'AbortError'));
    // A plain timer, held by the timer list until cleared, which in turn holds the controller. Not
    // AbortSignal.timeout(): Node holds that signal only weakly, and once composed with AbortSignal.any()
    // nothing holds it strongly, so a garbage collection can take it and the request then never times out.
    // The promise settles here too, not only through the abort, so a fetch that ignores its signal cannot
    // hold the caller either.
    const timer = setTimeout(() => giveUp(new DOMException(`GA did not answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
    if (signal?.aborted) {
      abandon();
      return;
    }
    signal?.addEventListener('abort', abandon, { once: true });
    void (async () => {
      try {
        const res = await send(url, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify(body),
          signal: controller.signal,
        });
        if (settled) {
          // A late answer to a request already given up on: it was counted as a failure and will be sent again.
          await res.body?.cancel().catch(() => undefined);
          return;
        }
        answered = { status: res.status, retryAfter: retryAfterMs(res.headers.get('retry-after'), Date.now()) };
        const text = await res.text().catch(() => '');
        const { status, retryAfter } = answered;
        settle(() => resolve({ status, text, retryAfter }));
      } catch (error) {
        settle(() => reject(error));
      }
    })();
  });
}

/** A failed GA request in words, without the URL (it carries the API secret). */
export function describeNetworkError(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError') return 'GA did not answer in time';
    if (error.name === 'AbortError') return 'request abandoned (collector stopping)';
    const cause = (error as Error & { cause?: { code?: string } }).cause;
    return `network error${cause?.code ? ` (${cause.code})` : ''}`;
  }
  return 'network error';
}
