// The relay's own HTTP client against real servers on 127.0.0.1: connections kept and reused, every way an
// answer can end, a server that misbehaves, and TLS with a certificate of the test's own.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { postJson, type PostOptions } from '../../server/delivery/ga-connections.ts';
import { describeNetworkError, postToGa } from '../../server/delivery/ga-client.ts';

const servers: Array<Server | TcpServer> = [];
const rawSockets: Socket[] = [];
afterEach(async () => {
  for (const socket of rawSockets.splice(0)) socket.destroy();
  for (const server of servers.splice(0)) {
    (server as Server).closeAllConnections?.();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A server on 127.0.0.1 that records each request's body and the connection it came on. */
async function httpServer(answer: (req: IncomingMessage, res: ServerResponse, body: string) => void, setUp: (server: Server) => void = () => undefined) {
  const received: Array<{ body: string; connection: number; headers: IncomingMessage['headers']; url: string | undefined }> = [];
  const connections = new Map<Socket, number>();
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      received.push({ body, connection: connections.get(req.socket) ?? -1, headers: req.headers, url: req.url });
      answer(req, res, body);
    });
  });
  server.on('connection', (socket: Socket) => connections.set(socket, connections.size));
  setUp(server);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mp/collect?measurement_id=G-T&api_secret=s`, received, connections: () => connections.size };
}

/** A TCP server that answers each connection's first request with `raw` and then does what `after` says. */
async function rawServer(raw: string | ((socket: Socket) => void), after: 'keep' | 'end' = 'keep') {
  let connections = 0;
  const server = createTcpServer((socket) => {
    connections += 1;
    rawSockets.push(socket);
    let seen = '';
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      if (!seen.includes('\r\n\r\n')) return;
      const length = Number(/content-length: (\d+)/i.exec(seen)?.[1] ?? 0);
      if (seen.length - seen.indexOf('\r\n\r\n') - 4 < length) return;
      seen = '';
      if (typeof raw === 'string') socket.write(raw);
      else raw(socket);
      if (after === 'end') socket.end();
    });
    socket.on('error', () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/mp/collect`, connections: () => connections };
}

/** Options with a timeout, and the function that abandons the request. */
function options(timeoutMs = 5_000): PostOptions & { abandon(reason: Error): void } {
  let abandon: (reason: Error) => void = () => undefined;
  return { timeoutMs, cancel: (fn) => (abandon = fn), abandon: (reason) => abandon(reason) };
}

async function post(url: string, json: string, timeoutMs = 5_000) {
  const answer = await postJson(url, json, options(timeoutMs));
  return { status: answer.status, retryAfter: answer.retryAfter, text: await answer.text() };
}

/** Two requests one after the other to a server answering each with `raw`; both get `expected`. Returns the connections used. */
async function postTwice(raw: string, expected: unknown, after: 'keep' | 'end' = 'keep'): Promise<number> {
  const server = await rawServer(raw, after);
  for (let i = 0; i < 2; i += 1) expect(await post(server.url, '{}')).toEqual(expected);
  return server.connections();
}

describe('connections to GA', () => {
  it('sends the JSON exactly, with its byte length, and reuses one connection for requests one after another', async () => {
    const server = await httpServer((_req, res) => res.writeHead(204).end());
    const bodies = ['{"a":1}', JSON.stringify({ title: 'Grüße, 東京 🚀', tab: '\t' }), '{}'];
    for (const body of bodies) expect((await post(server.url, body)).status).toBe(204);
    expect(server.received.map((r) => r.body)).toEqual(bodies);
    expect(server.received.map((r) => r.connection)).toEqual([0, 0, 0]);
    expect(server.received[1]?.headers['content-type']).toBe('application/json');
    expect(server.received[1]?.headers['content-length']).toBe(String(Buffer.byteLength(bodies[1] as string)));
    expect(server.received[0]?.url).toBe('/mp/collect?measurement_id=G-T&api_secret=s');
  });

  it('opens a connection per request in flight, and no more than 64 to one server; the rest wait their turn', async () => {
    const held: ServerResponse[] = [];
    const server = await httpServer((_req, res) => {
      held.push(res);
      // Answered all together once every connection the client may open is busy.
      if (held.length === 64) for (const r of held.splice(0)) r.writeHead(204).end();
      else if (server && server.received.length > 64) res.writeHead(204).end();
    });
    const answers = await Promise.all(Array.from({ length: 80 }, (_, i) => post(server.url, `{"n":${i}}`)));
    expect(answers.every((a) => a.status === 204)).toBe(true);
    expect(server.connections()).toBe(64);
    expect(server.received.map((r) => JSON.parse(r.body).n).sort((a: number, b: number) => a - b)).toEqual(Array.from({ length: 80 }, (_, i) => i));
  });

  it('reads a chunked answer whole, keeps at most maxAnswerChars of it, and passes Retry-After on', async () => {
    const long = 'é'.repeat(5_000);
    const server = await httpServer((_req, res) => {
      res.writeHead(429, { 'Retry-After': '7' });
      res.write('busy: ');
      setTimeout(() => res.end(long), 20);
    });
    expect(await post(server.url, '{}')).toEqual({ status: 429, retryAfter: '7', text: `busy: ${long}` });
    const answer = await postJson(server.url, '{}', { ...options(), maxAnswerChars: 10 });
    expect(await answer.text()).toBe(`busy: éééé`);
    // The whole answer was read: the connection serves the next request.
    expect((await post(server.url, '{}')).status).toBe(429);
    expect(server.connections()).toBe(1);
  });

  it('opens a new connection after an answer with Connection: close, and after the server closed an idle one', async () => {
    let close = true;
    const server = await httpServer((_req, res) => res.writeHead(200, close ? { Connection: 'close' } : {}).end('{}'));
    expect((await post(server.url, '{"n":1}')).status).toBe(200);
    close = false;
    expect((await post(server.url, '{"n":2}')).status).toBe(200);
    expect((await post(server.url, '{"n":3}')).status).toBe(200);
    expect(server.received.map((r) => r.connection)).toEqual([0, 1, 1]);

    // A server that closes each connection 50 ms after answering, as GA does with idle ones.
    const closing = await rawServer((socket) => {
      socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      setTimeout(() => socket.end(), 50);
    });
    for (let i = 0; i < 3; i += 1) {
      expect((await post(closing.url, '{}')).status).toBe(204);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    expect(closing.connections()).toBe(3);
  });

  it('reads an answer that runs to the end of the connection, then connects again', async () => {
    const raw = 'HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"validationMessages":[]}';
    expect(await postTwice(raw, { status: 200, retryAfter: null, text: '{"validationMessages":[]}' }, 'end')).toBe(2);
  });

  it('skips an interim 100 Continue and takes the answer after it', async () => {
    expect(await postTwice('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n', { status: 204, retryAfter: null, text: '' })).toBe(1);
  });

  it('fails on an answer that is not HTTP, and does not use that connection again', async () => {
    const server = await rawServer('SSH-2.0-OpenSSH_9.2\r\n\r\n');
    const error = await post(server.url, '{}').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/unreadable answer from GA/);
    await expect(post(server.url, '{}')).rejects.toThrow(/unreadable answer/);
    expect(server.connections()).toBe(2);
  });

  it('drops a connection that sends bytes nobody asked for, and the next request goes on a new one', async () => {
    const sockets: Socket[] = [];
    const server = await rawServer((socket) => {
      sockets.push(socket);
      socket.write('HTTP/1.1 204 No Content\r\n\r\n');
      // A second answer to the one request, a moment later, while the connection is idle.
      setTimeout(() => socket.write(sockets.length === 1 ? 'HTTP/1.1 204 No Content\r\n\r\n' : 'H'), 30);
    });
    expect((await post(server.url, '{}')).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(sockets[0]?.destroyed || sockets[0]?.readableEnded).toBe(true);
    expect((await post(server.url, '{}')).status).toBe(204);
    // Then a lone byte on the idle connection: dropped too, the next request is not read against it.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect((await post(server.url, '{}')).status).toBe(204);
    expect(server.connections()).toBe(3);
  });

  it('refuses an answer whose lengths would turn the parser back (a negative Content-Length or chunk size), at once', async () => {
    for (const raw of [
      'HTTP/1.1 200 OK\r\nContent-Length: -40\r\n\r\nx',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nx',
      'HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\nok',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok',
    ]) {
      const server = await rawServer(raw);
      const started = Date.now();
      const answer = await postJson(server.url, '{}', options(2_000)).then((a) => a.text()).catch((e: unknown) => e);
      expect((answer as Error).message).toMatch(/unreadable answer from GA/);
      expect(Date.now() - started).toBeLessThan(1_000);
    }
  });

  it('reads at most 1 MiB of an answer: an endless chunk head or trailer closes the connection', async () => {
    for (const endless of ['1', 'X-Trailer: 1\r\n']) {
      let written = 0;
      const server = await rawServer((socket) => {
        socket.write(`HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n${endless === '1' ? '' : '0\r\n'}`);
        const more = endless.repeat(Math.floor((64 * 1024) / endless.length));
        const pump = () => {
          while (!socket.destroyed && written < 8 * 1024 * 1024) {
            written += more.length;
            if (!socket.write(more)) return void socket.once('drain', pump);
          }
        };
        pump();
      });
      const answer = await postJson(server.url, '{}', options());
      expect(answer.status).toBe(200);
      await expect(answer.text()).rejects.toThrow('answer from GA too long');
      expect(written).toBeLessThan(8 * 1024 * 1024);
    }
  });

  it('keeps a character split between two reads whole, and cuts an answer without splitting a surrogate pair', async () => {
    const text = '{"m":"Grüße 🚀"}';
    const bytes = Buffer.from(text);
    const server = await rawServer((socket) => {
      socket.write(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${bytes.length}\r\n\r\n`);
      // The first read ends inside "ü" (two bytes in UTF-8).
      socket.write(bytes.subarray(0, 9));
      setTimeout(() => socket.write(bytes.subarray(9)), 30);
    });
    expect(await post(server.url, '{}')).toEqual({ status: 400, retryAfter: null, text });
    const rockets = await rawServer('HTTP/1.1 400 Bad Request\r\nContent-Length: 16\r\n\r\n🚀🚀🚀🚀');
    const answer = await postJson(rockets.url, '{}', { ...options(), maxAnswerChars: 3 });
    expect(await answer.text()).toBe('🚀');
  });

  it('takes the first of two answers to one request, and does not use that connection again', async () => {
    const raw = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nEVIL';
    expect(await postTwice(raw, { status: 200, retryAfter: null, text: 'ok' })).toBe(2);
  });

  it('refuses a switch of protocols as an answer', async () => {
    const server = await rawServer('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
    const started = Date.now();
    await expect(post(server.url, '{}', 2_000)).rejects.toThrow(/unreadable answer from GA/);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('never sends on a connection closed a moment before (its silence timeout ran out in the same turn)', async () => {
    const server = await rawServer('HTTP/1.1 204 No Content\r\n\r\n');
    for (let i = 0; i < 10; i += 1) {
      expect((await post(server.url, '{}', 100)).status).toBe(204);
      // A timer of the same length, set after the connection's: it runs right after the connection was closed.
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(server.connections()).toBe(10);
  });

  it('does not keep a process alive with an idle connection', async () => {
    const server = await httpServer((_req, res) => res.writeHead(204).end(), (s) => (s.keepAliveTimeout = 30_000));
    const module = new URL('../../server/delivery/ga-connections.ts', import.meta.url).href;
    const script = `import { postJson } from ${JSON.stringify(module)};
      const answer = await postJson(${JSON.stringify(server.url)}, '{}', { timeoutMs: 30000, cancel: () => undefined });
      console.log(answer.status, await answer.text());`;
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const code = await new Promise((resolve) => child.on('exit', resolve));
    expect(output.trim()).toBe('204');
    expect(code).toBe(0);
    // The child left as soon as its request was answered, not when the connection's 30 s ran out.
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(server.received).toHaveLength(1);
  });

  it('reads header and trailer lines in time that grows with their length, and refuses folded or overlong ones', async () => {
    const spaces = ' '.repeat(300_000);
    for (const raw of [
      `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-Trailer: 1\r\n${spaces}\r\n\r\n`,
      `HTTP/1.1 200 OK\r\nX-Long: a${spaces}b\r\nContent-Length: 0\r\n\r\n`,
      `HTTP/1.1 200 OK\r\nX-A: 1\r\n ${'x'.repeat(10)}\r\nContent-Length: 0\r\n\r\n`,
    ]) {
      const server = await rawServer(raw);
      const started = Date.now();
      const answer = await postJson(server.url, '{}', options(2_000)).then((a) => a.text()).catch((e: unknown) => e);
      expect((answer as Error).message).toMatch(/unreadable answer from GA/);
      expect(Date.now() - started).toBeLessThan(1_000);
    }
    // A value with spaces around it, within the bound, is read as GA means it.
    const spaced = await rawServer(`HTTP/1.1 429 Too Many Requests\r\nRetry-After:   7${' '.repeat(4_000)}\r\nContent-Length: 0\r\n\r\n`);
    expect(await post(spaced.url, '{}')).toEqual({ status: 429, retryAfter: '7', text: '' });
  });

  it('does not use a connection again that carried the start of another answer after the one asked for', async () => {
    expect(await postTwice('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 500 Oops\r\n', { status: 204, retryAfter: null, text: '' })).toBe(2);
  });

  it('takes a 204 as having no body even with a Content-Length', async () => {
    const started = Date.now();
    expect(await postTwice('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', { status: 204, retryAfter: null, text: '' })).toBe(1);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('never puts the URL (which carries the API secret) in an error, whatever went wrong', async () => {
    const secret = 'sEcReT-4f9a1c';
    const failing = [
      await rawServer('SSH-2.0-OpenSSH_9.2\r\n\r\n'),
      await rawServer('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'),
      await rawServer((socket) => socket.destroy()),
      await rawServer(() => undefined),
    ];
    const urls = [...failing.map((s) => `${s.url}?measurement_id=G-T&api_secret=${secret}`), `http://127.0.0.1:1/mp/collect?api_secret=${secret}`];
    for (const url of urls) {
      const error = await postToGa(url, '{}', { timeoutMs: 300 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect(`${(error as Error).message} ${(error as Error).stack ?? ''} ${describeNetworkError(error)}`).not.toContain(secret);
    }
  });

  it('fails when the server closes the connection before answering, with its error code when there is one', async () => {
    const server = await rawServer((socket) => socket.destroy());
    await expect(post(server.url, '{}')).rejects.toThrow(/closed the connection|ECONNRESET|EPIPE/);
    const refused = await post('http://127.0.0.1:1/mp/collect', '{}').catch((e: unknown) => e);
    expect(describeNetworkError(refused)).toBe('network error (ECONNREFUSED)');
  });

  it('closes a connection that stays silent past the timeout', async () => {
    const server = await rawServer(() => undefined);
    const started = Date.now();
    await expect(post(server.url, '{}', 150)).rejects.toThrow('GA went silent');
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('abandons a request in flight by closing its connection, and one still waiting for a connection before it is sent', async () => {
    const held: ServerResponse[] = [];
    const server = await httpServer((_req, res) => held.push(res));
    const requests = Array.from({ length: 65 }, (_, i) => {
      const o = options();
      return { o, answer: postJson(server.url, `{"n":${i}}`, o).catch((e: unknown) => e) };
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(server.received).toHaveLength(64);
    // The 65th waits for a connection: abandoned there, it is never sent.
    requests[64]?.o.abandon(new Error('stop'));
    requests[0]?.o.abandon(new Error('stop'));
    expect(await requests[64]?.answer).toMatchObject({ message: 'stop' });
    expect(await requests[0]?.answer).toMatchObject({ message: 'stop' });
    for (const r of held.splice(0)) if (!r.destroyed) r.writeHead(204).end();
    const rest = await Promise.all(requests.slice(1, 64).map((r) => r.answer));
    expect(rest.every((a) => (a as { status: number }).status === 204)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.received.map((r) => JSON.parse(r.body).n)).not.toContain(64);
  });

  it('speaks TLS to an https URL, checking the certificate against the trusted authorities', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ga-tls-'));
    try {
      execFileSync('openssl', [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
      ], { stdio: 'ignore' });
      const cert = readFileSync(join(dir, 'cert.pem'));
      const received: string[] = [];
      const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert }, (req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          received.push(body);
          res.writeHead(204).end();
        });
      });
      servers.push(server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/mp/collect?api_secret=s`;
      expect(await postToGa(url, '{"tls":1}', { timeoutMs: 5_000, tls: { ca: cert } })).toEqual({ status: 204, text: '', retryAfter: undefined });
      expect(await postToGa(url, '{"tls":2}', { timeoutMs: 5_000, tls: { ca: cert } })).toEqual({ status: 204, text: '', retryAfter: undefined });
      // Without the test's authority the certificate is not trusted, and nothing is sent.
      const refused = await postToGa(url, '{"tls":3}', { timeoutMs: 5_000 }).catch((e: unknown) => e);
      expect(describeNetworkError(refused)).toMatch(/network error \((DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)\)/);
      expect(received).toEqual(['{"tls":1}', '{"tls":2}']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
