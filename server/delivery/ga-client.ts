import { Agent as HttpAgent, request as httpRequest, type RequestOptions } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { retryAfterMs } from './backoff.ts';

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
  /** A fetch to send with instead (tests hand in their own); by default node's HTTP client on {@link gaAgent}'s pool. */
  fetch?: typeof fetch;
}

/** What a request to GA got back, whichever way it was sent. */
interface RawAnswer {
  status: number;
  retryAfter: string | null;
  text(): Promise<string>;
  discard(): Promise<unknown>;
}

/** Keep-alive pools for GA, by scheme and timeout. */
const agents = new Map<string, HttpAgent>();
/** Request options by URL: a token's URL is the same for every request (a few tokens; cleared past a bound). */
const targets = new Map<string, RequestOptions>();
const MAX_TARGETS = 1_000;
/** At most this much of GA's answer is kept. */
const MAX_ANSWER_CHARS = 64 * 1024;

/**
 * The connection pool for GA, with a socket timeout as a second line behind the deadline {@link postToGa}
 * holds: a socket that stays silent that long is closed, whatever happens to the deadline.
 */
function gaAgent(https: boolean, timeoutMs: number): HttpAgent {
  const key = `${https ? 'https' : 'http'}:${timeoutMs}`;
  let agent = agents.get(key);
  if (!agent) {
    const options = { keepAlive: true, maxSockets: 64, timeout: timeoutMs };
    agent = https ? new HttpsAgent(options) : new HttpAgent(options);
    agents.set(key, agent);
  }
  return agent;
}

function targetOf(url: string, timeoutMs: number): RequestOptions {
  let target = targets.get(url);
  if (!target) {
    const parsed = new URL(url);
    const https = parsed.protocol === 'https:';
    // An IPv6 address is written in brackets in a URL, and without them to the HTTP client.
    const hostname = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    target = { protocol: parsed.protocol, hostname, port: parsed.port, path: `${parsed.pathname}${parsed.search}`, agent: gaAgent(https, timeoutMs) };
    if (targets.size >= MAX_TARGETS) targets.clear();
    targets.set(url, target);
  }
  return target;
}

/**
 * POSTs with node's own HTTP client on a keep-alive pool: per request it costs about half of what a fetch or
 * undici's `request` with an abort signal does. `cancel` receives the function that abandons the request.
 */
function sendWithHttp(url: string, json: string, timeoutMs: number, cancel: (abandon: (reason: Error) => void) => void): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const target = targetOf(url, timeoutMs);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    // Encoded once: its length is the header, and the socket writes it as it is.
    const payload = Buffer.from(json);
    const req = send({ ...target, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': payload.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      // GA answers in a few bytes; more is read and let go (only its start is ever shown).
      res.on('data', (chunk: string) => {
        if (text.length < MAX_ANSWER_CHARS) text += chunk.slice(0, MAX_ANSWER_CHARS - text.length);
      });
      const body = new Promise<string>((done, failed) => {
        res.on('end', () => done(text));
        res.on('error', failed);
        res.on('aborted', () => failed(new Error('answer cut off')));
      });
      body.catch(() => undefined);
      const retryAfter = res.headers['retry-after'];
      resolve({ status: res.statusCode ?? 0, retryAfter: typeof retryAfter === 'string' ? retryAfter : null, text: () => body, discard: () => body });
    });
    cancel((reason) => req.destroy(reason));
    req.on('timeout', () => req.destroy(new Error('GA went silent')));
    req.on('error', reject);
    req.end(payload);
  });
}

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
          res = await sendWithHttp(url, json, timeoutMs, (abandon) => (cancel = abandon));
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
