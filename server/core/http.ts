import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { HTTPException } from 'hono/http-exception';
import type { ZodError } from 'zod';

/** One readable line from a validation failure: the first problem and where it is. */
export function describeZodError(error: ZodError): string {
  const issue = error.issues[0];
  if (!issue) return 'invalid body';
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  return `${where}${issue.message}`;
}

/**
 * A request body as JSON, whatever its Content-Type (a beacon says text/plain, curl's `-d` form data);
 * text that is not JSON is a 400 saying `message`.
 */
export function parseJsonBody(text: string, message = 'the body must be JSON'): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new HTTPException(400, { message });
  }
}

/**
 * The token of an `Authorization: Bearer <token>` header, or '' when there is none. Read without a
 * backtracking pattern: it runs before authentication, on any header anybody sends.
 */
export function bearerToken(header: string | undefined): string {
  return header !== undefined && header.slice(0, 7).toLowerCase() === 'bearer ' ? header.slice(7).trim() : '';
}

/**
 * Compares a submitted secret with the expected one in constant time.
 * Both sides are hashed first, so neither the content nor the length leaks through timing.
 * @example sameSecret(bearerToken(header), config.eventsKey)
 */
export function sameSecret(submitted: string, expected: string): boolean {
  const a = createHash('sha256').update(submitted, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The 413 of a body over `maxBytes`; thrown, so the app's one error handler answers it. */
export function bodyTooLarge(maxBytes: number): never {
  throw tooLarge(maxBytes);
}

const tooLarge = (maxBytes: number) => new HTTPException(413, { message: `body over ${maxBytes} bytes` });

/** A refusal that says when to come back: answered with `Retry-After`, in seconds. */
export class RetryLaterError extends HTTPException {
  constructor(
    status: 429 | 503,
    message: string,
    readonly retryAfterS: number,
  ) {
    super(status, { message });
  }
}

/**
 * Refuses request bodies over `maxBytes` with a 413, without reading more than that. A body of unknown length
 * (chunked) is read here, so one the client cuts short fails here: a {@link BodyCutShortError}, as in {@link bodyText}.
 * @example app.post('/api/events', limitBody(16 * 1024), handler)
 */
export function limitBody(maxBytes: number): MiddlewareHandler {
  const limit = bodyLimit({ maxSize: maxBytes, onError: () => bodyTooLarge(maxBytes) });
  return async function limitedBody(c, next) {
    let reading = true;
    try {
      await limit(c, async () => {
        reading = false;
        await next();
      });
    } catch (error) {
      // Only a failure while the body was read here is the client's; what the handlers after it throw is theirs.
      throw reading ? asCutShort(c, error) : error;
    }
  };
}

/**
 * A body that did not arrive whole: the client closed the connection (a closed tab, a lost mobile connection) or
 * reset it before the body's end. The client's doing, like any bad body: a 400, never a 500 or a line in the log.
 */
export class BodyCutShortError extends HTTPException {
  constructor() {
    super(400, { message: 'the body did not arrive whole: the connection closed before its end' });
  }
}

/**
 * The request's body as text. A body the client did not send whole is a {@link BodyCutShortError}; a refusal
 * on the way (a 413 from {@link limitBody}) stays what it is, and so does any other failure (a bug: a 500).
 */
export async function bodyText(c: Context): Promise<string> {
  try {
    return await c.req.text();
  } catch (error) {
    throw asCutShort(c, error);
  }
}

const utf8 = new TextDecoder();

/**
 * Node's request body as text, as {@link bodyText} reads hono's (a leading byte-order mark dropped): a 413 once it
 * passes `maxBytes` (the rest is left to {@link dropRest}), a {@link BodyCutShortError} when the client closes or
 * resets the connection before the body's end.
 * @example const text = await readBody(req, 4096);
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (error: unknown, text = '') => {
      req.off('data', onData).off('end', onEnd).off('error', onCut).off('close', onCut);
      if (error === undefined) resolve(text);
      else reject(error);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) return void chunks.push(chunk);
      // Nothing more is read here: what else comes is the answer's to drop (see dropRest).
      req.pause();
      chunks.length = 0;
      settle(tooLarge(maxBytes));
    };
    const onEnd = () => settle(undefined, utf8.decode(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    const onCut = () => settle(new BodyCutShortError());
    req.on('data', onData).on('end', onEnd).on('error', onCut).on('close', onCut);
  });
}

/** How long, and how much of it, a body answered before its end is read and dropped: as @hono/node-server drains one. */
const DROP_MS = 500;
const DROP_BYTES = 64 * 1024 * 1024;

/**
 * After a request was answered before its body's end (a 413, a 429): what else comes is read and dropped for at
 * most 500 ms and 64 MiB, then nothing more is read and the connection is closed once the answer is out. A client
 * that does not read its answers (say, behind requests it pipelined) keeps an idle connection until the request
 * timeout, and is sent nothing more.
 * @example res.writeHead(413).end(); dropRest(req);
 */
export function dropRest(req: IncomingMessage): void {
  if (req.complete || req.destroyed) return;
  let left = DROP_BYTES;
  const done = () => {
    clearTimeout(timer);
    req.off('data', onData).off('end', done).off('error', done);
  };
  const close = () => {
    done();
    // Paused, the request reads no more from the connection: the client's sending stops with its TCP window.
    req.pause();
    req.socket.destroySoon();
  };
  const onData = (chunk: Buffer) => {
    left -= chunk.length;
    if (left < 0) close();
  };
  const timer = setTimeout(close, DROP_MS).unref();
  // Read here, so that Node does not drop the rest itself (uncounted) once the answer is out.
  req.on('data', onData).on('end', done).on('error', done);
  req.resume();
}

/** A failure to read the body as it is to be thrown: a {@link BodyCutShortError} when the client went away. */
function asCutShort(c: Context, error: unknown): unknown {
  return !(error instanceof HTTPException) && clientWentAway(c, error) ? new BodyCutShortError() : error;
}

/**
 * Whether reading the body failed because the client went away before its end: node's request was aborted or
 * destroyed (@hono/node-server hands it over as `c.env.incoming`), the request's signal says so, or the error is
 * node's own for it.
 */
function clientWentAway(c: Context, error: unknown): boolean {
  const incoming = (c.env as { incoming?: { destroyed?: boolean; readableAborted?: boolean; errored?: unknown } } | undefined)?.incoming;
  if (incoming && (incoming.destroyed === true || incoming.readableAborted === true || (incoming.errored ?? null) !== null)) return true;
  if (c.req.raw.signal?.aborted) return true;
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ECONNRESET' || (error instanceof Error && (error.message === 'aborted' || error.message === 'Client connection prematurely closed.'));
}
