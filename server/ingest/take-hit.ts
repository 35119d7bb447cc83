import type { IncomingMessage } from 'node:http';
import { HTTPException } from 'hono/http-exception';
import { MAX_HIT_BYTES } from '../../shared/wire.ts';
import { addressFrom } from '../core/client-address.ts';
import type { Clock } from '../core/clock.ts';
import type { Config } from '../core/config.ts';
import { BodyCutShortError, bodyTooLarge, readBody } from '../core/http.ts';
import type { Metrics } from '../core/metrics.ts';
import { pageViewParams } from '../delivery/measurement-protocol.ts';
import type { NewEvent, Outbox } from '../delivery/outbox.ts';
import type { Tokens } from '../tokens/tokens.ts';
import { deviceFromUserAgent, isBot } from './device.ts';
import { parseHit } from './hit.ts';
import { rateLimiter } from './rate-limit.ts';

/** What taking a hit works with. */
export interface CollectDeps {
  config: Pick<Config, 'disabled' | 'pageOrigin' | 'rateLimitPerMinute' | 'trustProxy'>;
  metrics: Metrics;
  outbox: Pick<Outbox, 'add'>;
  tokens: Pick<Tokens, 'recipients'>;
  clock: Clock;
}

/** A hit as it arrived, whichever way: hono's context (the app's route) or Node's request (`npm start`'s listener). */
export interface HitRequest {
  /** A request header by its lower-case name. */
  header(name: string): string | undefined;
  /** The client's address, from `X-Forwarded-For` only when `trustProxy`. */
  clientAddress(trustProxy: boolean): string;
  /** The body as text: a 413 past `maxBytes` without reading more, a {@link BodyCutShortError} when cut short. */
  text(maxBytes: number): Promise<string>;
}

/** Why a well-formed hit was answered 204 but not queued (the `X-Analytics-Ignored` header). */
export type IgnoreReason = 'disabled' | 'bot' | 'ignored-path' | 'no-token';

/** As the app-wide security headers send it; the snippet and hits set their own headers. */
export const HSTS = 'max-age=15552000; includeSubDomains';

/** What every answer to a hit carries, refusals too: every origin may post, and read `X-Analytics-Ignored`. */
export const HIT_HEADERS: Readonly<Record<string, string>> = {
  'Access-Control-Allow-Origin': '*',
  'Access-Control-Expose-Headers': 'X-Analytics-Ignored',
  'X-Content-Type-Options': 'nosniff',
  'Strict-Transport-Security': HSTS,
};

/** The answer's headers when a hit is taken but not queued, by reason. */
const withReason = (reason: IgnoreReason): Record<string, string> => ({ ...HIT_HEADERS, 'X-Analytics-Ignored': reason });
const IGNORED_HEADERS: Record<IgnoreReason, Record<string, string>> = {
  disabled: withReason('disabled'),
  bot: withReason('bot'),
  'ignored-path': withReason('ignored-path'),
  'no-token': withReason('no-token'),
};

/** The `reason` label of `analytics_hits_refused_total`, by the status a hit was refused with. */
const REFUSED: Partial<Record<number, string>> = { 400: 'invalid', 413: 'too-large', 429: 'rate-limited' };

/** Takes hits: {@link HitTaker.take} answers the 204's headers or throws the refusal for the app's one error answer. */
export interface HitTaker {
  /**
   * Checks, reads and queues a hit; resolves with the headers of its 204 once it is on disk (or ignored on purpose).
   * A refusal it throws is counted in `/metrics` already.
   */
  take(request: HitRequest): Promise<Readonly<Record<string, string>>>;
}

/**
 * `POST /collect` without its framework: one rate limit and one sequence of checks, whether the hit came
 * through the app's route or straight from Node's request.
 */
export function hitTaker(deps: CollectDeps): HitTaker {
  const { config, metrics, outbox, tokens, clock } = deps;
  const checkRate = rateLimiter({ max: config.rateLimitPerMinute });
  const ignored = (reason: IgnoreReason) => {
    metrics.hitsIgnored.inc({ reason });
    return IGNORED_HEADERS[reason];
  };
  return {
    async take(request) {
      try {
        checkRate(request.clientAddress(config.trustProxy));
        // A declared length is judged before anything is read. Node's parser delivers exactly Content-Length bytes,
        // so the header is the body's size; a body of unknown length (chunked) is read with the cap.
        const length = request.header('content-length');
        if (length !== undefined && request.header('transfer-encoding') === undefined && Number.parseInt(length, 10) > MAX_HIT_BYTES) {
          bodyTooLarge(MAX_HIT_BYTES);
        }
        const hit = parseHit(await request.text(MAX_HIT_BYTES));
        metrics.hitsReceived.inc();
        if (config.disabled) return ignored('disabled');
        const userAgent = request.header('user-agent') ?? '';
        if (isBot(userAgent)) return ignored('bot');

        const enabled = tokens.recipients('pageViews');
        if (enabled.length === 0) return ignored('no-token');
        const receiving = enabled.filter((t) => !t.ignore.some((pattern) => pattern.test(hit.path)));
        if (receiving.length === 0) return ignored('ignored-path');

        const occurredAt = clock();
        const params = pageViewParams(hit, config.pageOrigin, occurredAt);
        const device = deviceFromUserAgent(userAgent, hit.language);
        const events: NewEvent[] = receiving.map((t) => ({ tokenId: t.token.id, name: 'page_view', params, device, occurredAt }));
        // The 204 is a promise that the hit is on disk: answer only once the group commit is done.
        await outbox.add(events);
        return HIT_HEADERS;
      } catch (error) {
        if (error instanceof HTTPException) {
          metrics.hitsRefused.inc({ reason: error instanceof BodyCutShortError ? 'cut-short' : (REFUSED[error.status] ?? String(error.status)) });
        }
        throw error;
      }
    },
  };
}

/** A hit straight from Node's request (`npm start`'s listener): no web Request or Headers is built for it. */
export function nodeHit(req: IncomingMessage): HitRequest {
  return {
    // Node joins a repeated header with ", " as web Headers do, but for a few it keeps the first alone; of those a
    // hit reads only User-Agent (a repeated Content-Length is the parser's 400).
    header: (name) => (name === 'user-agent' ? everyUserAgent(req.rawHeaders) : (req.headers[name] as string | undefined)),
    clientAddress: (trustProxy) => addressFrom(trustProxy ? (req.headers['x-forwarded-for'] as string | undefined) : undefined, req.socket.remoteAddress),
    text: (maxBytes) => readBody(req, maxBytes),
  };
}

/** Every User-Agent header's value joined with ", ", as the app's route reads it from web Headers. */
function everyUserAgent(raw: string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 10 && name.toLowerCase() === 'user-agent') value = value === undefined ? raw[i + 1] : `${value}, ${raw[i + 1]}`;
  }
  return value;
}
