// Keep-alive connections to GA for one kind of request: a POST of a JSON body and GA's short answer. Under load
// the relay sends over a thousand requests a second; node's HTTP client spent about 70 µs of CPU on each (its
// request and response objects, their streams and events), this about a third of that. The request is written
// as one buffer; the answer is read by http-parser-js (status, headers, a sized, chunked or closing body).
import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { StringDecoder } from 'node:string_decoder';
import { HTTPParser, type HeaderInfo } from 'http-parser-js';
import { clampText } from './measurement-protocol.ts';

/** What GA answered, as soon as its status and headers are in; the body follows. */
export interface ConnectionAnswer {
  status: number;
  retryAfter: string | null;
  /** The body as text, at most {@link PostOptions.maxAnswerChars} of it (the rest is read and let go). */
  text(): Promise<string>;
  discard(): Promise<unknown>;
}

/** How one POST is made. */
export interface PostOptions {
  /** A connection silent this long (connecting, waiting for the answer, or idle in the pool) is closed. */
  timeoutMs: number;
  /** Receives the function that abandons the request (its connection is closed). */
  cancel(abandon: (reason: Error) => void): void;
  maxAnswerChars?: number;
  /** Receives the body's bytes as they are sent (a view of the request's buffer: never to be changed). */
  sentBytes?: (bytes: Buffer) => void;
}

/** Where requests go: one pool of connections per scheme, host, port and timeout. */
interface Target {
  pool: Pool;
  /** The request's head up to its Content-Length value. */
  head: string;
}

/** At most this many connections to one origin; more requests wait for one to come free. */
const MAX_SOCKETS = 64;
/** Targets are cached by URL (a token's URL is the same for every request): a few tokens; cleared past a bound. */
const MAX_TARGETS = 1_000;
/** At most this much of GA's answer is kept as text, unless a request says otherwise (only its start is ever shown). */
const DEFAULT_MAX_ANSWER_CHARS = 64 * 1024;
/**
 * At most this much of an answer is read, headers included (GA answers in a few bytes, its validation in a few
 * kB): past it the connection is closed, so a broken or hostile server cannot fill the memory.
 */
const MAX_ANSWER_BYTES = 1024 * 1024;
/** The longest header or trailer line read. */
const MAX_HEADER_LINE = 8 * 1024;

/** The pools by the TLS options they connect with: the default, or a test's own certificate authority. */
const DEFAULT_TLS: ConnectionOptions = {};
const pools = new WeakMap<ConnectionOptions, Map<string, Pool>>();
const targets = new Map<string, Target>();

/** A request in flight. */
interface Exchange {
  payload: Buffer;
  maxAnswerChars: number;
  resolve(answer: ConnectionAnswer): void;
  reject(error: Error): void;
  /** The connection carrying it, once it has one. */
  connection?: Connection;
  /** Set once the status is in: the body read so far, and how its promise ends. */
  body?: { text: string; decoder: StringDecoder | undefined; done(text: string): void; failed(error: Error): void };
  /** Bytes of the answer read so far (headers included). */
  received: number;
  /** The connection may carry the next request once this one's answer is complete. */
  keepAlive: boolean;
  complete: boolean;
}

/** One connection, with its parser and the exchange it carries (none while idle). */
interface Connection {
  socket: Socket;
  parser: InstanceType<typeof HTTPParser>;
  exchange: Exchange | undefined;
  error: Error | undefined;
}

class Pool {
  private readonly idle: Connection[] = [];
  private open = 0;
  private readonly waiting: Exchange[] = [];
  /** The last TLS session, so a new connection resumes it instead of a full handshake. */
  private session: Buffer | undefined;

  constructor(
    private readonly https: boolean,
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
    private readonly tls: ConnectionOptions,
  ) {}

  /** Sends `exchange` on an idle connection, a new one, or the first that comes free. */
  send(exchange: Exchange): void {
    let connection = this.idle.pop();
    // One closed a moment ago (its `close` event not yet run) is no use.
    while (connection?.socket.destroyed) connection = this.idle.pop();
    if (connection) this.start(connection, exchange);
    else if (this.open < MAX_SOCKETS) this.start(this.connect(), exchange);
    else this.waiting.push(exchange);
  }

  /** Abandons `exchange`: out of the queue if it waits there, else its connection is closed. */
  abandon(exchange: Exchange, reason: Error): void {
    const at = this.waiting.indexOf(exchange);
    if (at !== -1) {
      this.waiting.splice(at, 1);
      exchange.reject(reason);
    } else if (exchange.connection?.exchange === exchange) {
      exchange.connection.socket.destroy(reason);
    }
  }

  private connect(): Connection {
    const { host, port } = this;
    const socket = this.https
      ? connectTls({ host, port, servername: isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'], session: this.session, ...this.tls })
      : connectTcp({ host, port });
    socket.setNoDelay(true);
    socket.setTimeout(this.timeoutMs);
    this.open += 1;
    const connection: Connection = { socket, parser: new HTTPParser(HTTPParser.RESPONSE), exchange: undefined, error: undefined };
    this.listen(connection);
    if (this.https) socket.on('session', (session: Buffer) => (this.session = session));
    return connection;
  }

  private start(connection: Connection, exchange: Exchange): void {
    connection.exchange = exchange;
    exchange.connection = connection;
    connection.socket.ref();
    connection.socket.write(exchange.payload);
  }

  /** The answer on `connection` is complete: its body is handed over, and the connection goes to the next request. */
  private finish(connection: Connection): void {
    const exchange = connection.exchange as Exchange;
    connection.exchange = undefined;
    const body = exchange.body;
    if (body) body.done(clampText(body.text + (body.decoder?.end() ?? ''), exchange.maxAnswerChars));
    // Anything after the answer goes with the parser's state.
    connection.parser.initialize(HTTPParser.RESPONSE);
    if (!exchange.keepAlive) connection.socket.destroy();
    if (connection.socket.destroyed) return;
    const next = this.waiting.shift();
    if (next) return this.start(connection, next);
    // An idle connection does not keep the process (or the thread) alive.
    connection.socket.unref();
    this.idle.push(connection);
  }

  private listen(connection: Connection): void {
    const { socket, parser } = connection;
    // Header and trailer lines are read here, not by the library's patterns: on a long run of spaces those take
    // time that grows with the square of the line (a megabyte would hold the thread for minutes). A folded line
    // (one that starts with a space) is refused, as is a line no answer of GA's comes near.
    parser.parseHeader = (line: string, headers: string[]) => {
      if (line.length > MAX_HEADER_LINE) throw new BadAnswer('a header line too long');
      const colon = line.indexOf(':');
      if (colon <= 0 || line.includes('\r') || /[ \t]/.test(line.slice(0, colon))) throw new BadAnswer('a bad header line');
      let start = colon + 1;
      let end = line.length;
      while (start < end && (line[start] === ' ' || line[start] === '\t')) start += 1;
      while (end > start && (line[end - 1] === ' ' || line[end - 1] === '\t')) end -= 1;
      headers.push(line.slice(0, colon), line.slice(start, end));
    };
    // The parser's callbacks throw what is wrong with an answer: that stops the parser at once (a server's
    // bytes are never read on past a fault), and `execute` hands the error on.
    parser[HTTPParser.kOnHeadersComplete] = (...args: unknown[]) => {
      // http-parser-js passes one object, or in its old mode (which another module can switch on) the fields.
      const info = (typeof args[0] === 'object' ? args[0] : { headers: args[2], statusCode: args[5], shouldKeepAlive: args[8] }) as Pick<
        HeaderInfo,
        'headers' | 'statusCode' | 'shouldKeepAlive'
      >;
      const exchange = connection.exchange;
      if (!exchange || exchange.body) throw new BadAnswer('more than one answer to a request');
      let retryAfter: string | null = null;
      let length: string | undefined;
      for (let i = 0; i < info.headers.length; i += 2) {
        const name = (info.headers[i] as string).toLowerCase();
        const value = info.headers[i + 1] as string;
        if (name === 'retry-after') retryAfter = value;
        else if (name === 'content-length') {
          // The parser takes any number (a negative one would send it back over what it read): only digits, once.
          if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== value)) throw new BadAnswer('a bad Content-Length');
          length = value;
        }
      }
      // An interim answer (100 Continue, 103 Early Hints): the real one follows. A switch of protocols is no answer.
      if (info.statusCode === 101) throw new BadAnswer('a switch of protocols');
      if (info.statusCode < 200) return;
      let done: (text: string) => void = () => undefined;
      let failed: (error: Error) => void = () => undefined;
      const body = new Promise<string>((resolve, reject) => ((done = resolve), (failed = reject)));
      body.catch(() => undefined);
      exchange.body = { text: '', decoder: undefined, done, failed };
      exchange.keepAlive = info.shouldKeepAlive;
      exchange.resolve({ status: info.statusCode, retryAfter, text: () => body, discard: () => body });
      // A 204 or 304 has no body whatever its headers say (the parser would wait for the Content-Length's bytes).
      return info.statusCode === 204 || info.statusCode === 304 ? 1 : 0;
    };
    parser[HTTPParser.kOnBody] = (chunk: Buffer, offset: number, length: number) => {
      // A chunk's size is not checked by the parser either.
      if (!Number.isInteger(length) || length < 0) throw new BadAnswer('a bad chunk size');
      const body = connection.exchange?.body;
      if (!body || body.text.length >= (connection.exchange as Exchange).maxAnswerChars) return;
      // Decoded across chunks, so that a character split between two reads stays whole.
      body.decoder ??= new StringDecoder('utf8');
      body.text += body.decoder.write(chunk.subarray(offset, offset + length));
    };
    parser[HTTPParser.kOnMessageComplete] = () => {
      const exchange = connection.exchange;
      if (!exchange?.body) return;
      exchange.complete = true;
      // Bytes after the answer in what was read (the start of an answer nobody asked for): not used again.
      const { offset, end } = parser as unknown as { offset?: number; end?: number };
      if (offset !== undefined && end !== undefined && offset < end) exchange.keepAlive = false;
    };
    socket.on('data', (chunk: Buffer) => {
      const exchange = connection.exchange;
      // Bytes while no request is out: the connection cannot be trusted any more.
      if (!exchange) return void socket.destroy();
      exchange.received += chunk.length;
      if (exchange.received > MAX_ANSWER_BYTES) return void socket.destroy(new Error('answer from GA too long'));
      let result: number | Error;
      try {
        result = parser.execute(chunk);
      } catch (error) {
        result = error instanceof Error ? error : new Error(String(error));
      }
      if (result instanceof Error || result !== chunk.length) {
        // A complete answer stands; the connection that carried more after it is not used again.
        if (exchange.complete) {
          exchange.keepAlive = false;
          return this.finish(connection);
        }
        const reason = result instanceof Error ? ((result as Error & { code?: string }).code ?? result.message) : 'an upgrade';
        return void socket.destroy(new Error(`unreadable answer from GA (${reason})`));
      }
      if (exchange.complete) this.finish(connection);
    });
    socket.on('end', () => {
      // A body that runs to the end of the connection ends here.
      if (connection.exchange && parser.finish() === undefined && connection.exchange.complete) this.finish(connection);
      socket.destroy();
    });
    socket.on('timeout', () => socket.destroy(new Error('GA went silent')));
    socket.on('error', (error) => (connection.error = error));
    socket.on('close', () => {
      this.open -= 1;
      const at = this.idle.indexOf(connection);
      if (at !== -1) this.idle.splice(at, 1);
      const exchange = connection.exchange;
      connection.exchange = undefined;
      if (exchange) {
        const error = connection.error ?? new Error(exchange.body ? 'GA closed the connection in the middle of its answer' : 'GA closed the connection before answering');
        if (exchange.body) exchange.body.failed(error);
        else exchange.reject(error);
      }
      // A request waiting for a connection gets a new one.
      const next = this.waiting.shift();
      if (next) this.start(this.connect(), next);
    });
  }
}

/** What is wrong with an answer, thrown from the parser's callbacks to stop it. */
class BadAnswer extends Error {
  constructor(what: string) {
    super(what);
    this.name = 'BadAnswer';
  }
}

function targetOf(url: string, timeoutMs: number, tls: ConnectionOptions): Target {
  const key = `${timeoutMs} ${url}`;
  let target = tls === DEFAULT_TLS ? targets.get(key) : undefined;
  if (!target) {
    const parsed = new URL(url);
    const https = parsed.protocol === 'https:';
    if (!https && parsed.protocol !== 'http:') throw new Error(`GA's URL must be http or https, not ${parsed.protocol}`);
    // An IPv6 address is written in brackets in a URL, and without them to connect.
    const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(parsed.port || (https ? 443 : 80));
    const poolKey = `${https ? 'https' : 'http'} ${host} ${port} ${timeoutMs}`;
    let byKey = pools.get(tls);
    if (!byKey) pools.set(tls, (byKey = new Map()));
    let pool = byKey.get(poolKey);
    if (!pool) {
      pool = new Pool(https, host, port, timeoutMs, tls);
      byKey.set(poolKey, pool);
    }
    const head = `POST ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\nContent-Type: application/json\r\nContent-Length: `;
    target = { pool, head };
    if (tls === DEFAULT_TLS) {
      if (targets.size >= MAX_TARGETS) targets.clear();
      targets.set(key, target);
    }
  }
  return target;
}

/**
 * POSTs `json` to `url` on a kept-alive connection. Resolves once the status and headers are in; rejects on a
 * network error, a connection closed or silent before the answer, or an answer that is not HTTP.
 */
export function postJson(url: string, json: string, options: PostOptions, tls: ConnectionOptions = DEFAULT_TLS): Promise<ConnectionAnswer> {
  return new Promise((resolve, reject) => {
    const { pool, head } = targetOf(url, options.timeoutMs, tls);
    // The whole request as one buffer, so it leaves in one write.
    const bytes = Buffer.byteLength(json);
    const start = `${head}${bytes}\r\n\r\n`;
    const payload = Buffer.allocUnsafe(start.length + bytes);
    payload.write(start, 0, 'latin1');
    payload.write(json, start.length, 'utf8');
    options.sentBytes?.(payload.subarray(start.length));
    const exchange: Exchange = { payload, maxAnswerChars: options.maxAnswerChars ?? DEFAULT_MAX_ANSWER_CHARS, resolve, reject, received: 0, keepAlive: false, complete: false };
    options.cancel((reason) => pool.abandon(exchange, reason));
    pool.send(exchange);
  });
}
