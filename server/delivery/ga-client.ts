import type { ConnectionOptions } from 'node:tls';
import { retryAfterMs } from './backoff.ts';
import { postJson, type ConnectionAnswer } from './ga-connections.ts';

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
  /** A fetch to send with instead (tests hand in their own); by default a kept-alive connection ({@link postJson}). */
  fetch?: typeof fetch;
  /** TLS options for the connection to an https URL (a test's own certificate authority); the system's by default. */
  tls?: ConnectionOptions;
  /** Receives the body's UTF-8 bytes as the connection sends them (not with `fetch`); never to be changed. */
  sentBytes?: (bytes: Buffer) => void;
}

/** What a request to GA got back, whichever way it was sent: the status and headers, then the body. */
type RawAnswer = ConnectionAnswer;

async function sendWithFetch(send: typeof fetch, url: string, json: string, signal: AbortSignal): Promise<RawAnswer> {
  const res = await send(url, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: json, signal });
  return {
    status: res.status,
    retryAfter: res.headers.get('retry-after'),
    text: () => res.text(),
    discard: async () => res.body?.cancel(),
  };
}

/**
 * POSTs `json` (a Measurement Protocol body) to GA and reads the answer, settling within `timeoutMs` whatever the network, the
 * fetch implementation or the garbage collector do. Rejects on a network error, the timeout or `signal`.
 * @example const { status } = await postToGa(mpUrl(gaUrl, token), body, { timeoutMs: 10_000, signal });
 */
export function postToGa(url: string, json: string, options: GaRequestOptions = {}): Promise<GaAnswer> {
  const { timeoutMs = DEFAULT_GA_TIMEOUT_MS, signal, fetch: send } = options;
  return new Promise<GaAnswer>((resolve, reject) => {
    // How the request in flight is abandoned (set once it is made).
    let cancel: (reason: Error) => void = () => undefined;
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
      cancel(reason);
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
        let res: RawAnswer;
        if (send) {
          const controller = new AbortController();
          cancel = (reason) => controller.abort(reason);
          res = await sendWithFetch(send, url, json, controller.signal);
        } else {
          res = await postJson(url, json, { timeoutMs, cancel: (abandon) => (cancel = abandon), sentBytes: options.sentBytes }, options.tls);
        }
        if (settled) {
          // A late answer to a request already given up on: it was counted as a failure and will be sent again.
          await res.discard().catch(() => undefined);
          return;
        }
        answered = { status: res.status, retryAfter: retryAfterMs(res.retryAfter, Date.now()) };
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
    // fetch puts the system's code on the cause; node's HTTP client on the error itself.
    const { code, cause } = error as Error & { code?: unknown; cause?: { code?: unknown } };
    const named = typeof cause?.code === 'string' ? cause.code : typeof code === 'string' ? code : undefined;
    return `network error${named ? ` (${named})` : ''}`;
  }
  return 'network error';
}
