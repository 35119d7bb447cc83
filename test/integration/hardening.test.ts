import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { afterAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import { clientAddress } from '../../server/core/client-address.ts';
import { rateLimiter } from '../../server/ingest/rate-limit.ts';
import { startCollector } from '../../harness/collector-process.ts';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { ADMIN_TOKEN, api, login, recordingLogger } from '../helpers/admin.ts';
import { METRICS_TOKEN, addTestToken, fakeClock, makeTestApp, metricsText, outboxEvents, queueEvents, until } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const EVENTS_KEY = 'events-key-for-hardening-01';
const dir = mkdtempSync(join(tmpdir(), 'analytics-hardening-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

const hitRequest = (path: string, headers: Record<string, string> = {}) => ({
  method: 'POST',
  body: JSON.stringify({ path, title: 't', language: 'en' }),
  headers: { 'User-Agent': CHROME, ...headers },
});

/**
 * An app on a SQLite file of its own with a token, and a second connection holding that file's write lock until
 * `release()`: every write of the app waits out its busy timeout and fails.
 */
async function appBesideALock(name: string) {
  const file = join(dir, name);
  const { app, services } = await makeTestApp({ database: { sqliteFile: file }, config: { gaUrl: ga.url } });
  stopAfterTest({ stop: () => services.store.close() });
  await addTestToken(services);
  const Database = (await import('better-sqlite3')).default;
  const other = new Database(file);
  other.exec('BEGIN IMMEDIATE');
  const release = () => {
    other.exec('ROLLBACK');
    other.close();
  };
  return { app, services, release };
}

describe('a fair outbox', () => {
  it('past the bound drops page views, never the host events, counts the drops by reason and feature and shows them', async () => {
    const { app, services } = await makeTestApp({ config: { eventsKey: EVENTS_KEY, adminToken: ADMIN_TOKEN, gaUrl: ga.url }, outboxMax: 100 });
    await addTestToken(services);
    const event = await app.request('/api/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${EVENTS_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'host.jobs', task: 'nightly' }),
    });
    expect(event.status).toBe(202);
    for (let i = 0; i < 110; i += 1) expect((await app.request('/collect', hitRequest(`/anon/${i}`))).status).toBe(204);
    await services.outbox.settled();
    await services.outbox.trim();
    const names = await outboxEvents(services);
    expect(names).toHaveLength(100);
    expect(names.filter((r) => r.name === 'task_event')).toHaveLength(1);
    expect(await metricsText(app)).toMatch(/^analytics_events_dropped_total\{reason="outbox-full",feature="pageViews"\} 11$/m);
    const browser = await login(app);
    const page = await (await app.request('/admin/analytics/analyticstokens/', { headers: { cookie: browser.cookie } })).text();
    expect(page).toMatch(/11 page views \(page_view\): the outbox was full/);
  });
});

describe('ignore paths cost little, always', () => {
  it('refuses patterns that are too long, repeat too much or run too slowly, saying why, on the API and the page', async () => {
    const { app } = await makeTestApp({ config: { adminToken: ADMIN_TOKEN } });
    const cases: Array<[string, RegExp]> = [
      ['x'.repeat(201), /longer than 200 characters|at most 200 characters/],
      ['[a-z]{1000}[0-9]', /repeats something more than 100 times/],
      ['[a-z]{100}[0-9]', /too complex to run on every page view \(103 instructions; at most 100\)/],
      // Few instructions per repeat but a hundred repeats: a path of Z's keeps them all alive at each character.
      ['^/(?:[^/]*Z){100}', /too complex to run on every page view/],
    ];
    for (const [pattern, why] of cases) {
      const res = await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-SLOW1', ignorePaths: [pattern] });
      expect(res.status, pattern.slice(0, 20)).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(why);
    }
    const browser = await login(app);
    const form = await app.request('/admin/analytics/analyticstokens/add/', {
      method: 'POST',
      headers: { cookie: browser.cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: browser.csrf, name: 'P', measurementId: 'G-SLOW1', ignorePaths: '[a-z]{1000}[0-9]' }).toString(),
    });
    expect(form.status).toBe(400);
    expect(await form.text()).toMatch(/repeats something more than 100 times/);
    expect(((await (await api(app, 'GET', '/tokens')).json()) as { tokens: unknown[] }).tokens).toHaveLength(1);

    // Each fine alone, too many together: a page view would run them all.
    const long = (c: string) => `^/${c.repeat(80)}`;
    const together = await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-SLOW1', ignorePaths: [long('a'), long('b'), long('c'), long('d')] });
    expect(together.status).toBe(400);
    expect(((await together.json()) as { error: string }).error).toMatch(/together are too complex .* at most 300 for a token/);
    const three = await api(app, 'POST', '/tokens', { name: 'P', measurementId: 'G-SLOW1', ignorePaths: [long('a'), long('b'), long('c')] });
    expect(three.status).toBe(201);
  });

  it('treats a stored pattern that breaks the limits as matching every path, cheaply, and the admin says so', async () => {
    const { app, services } = await makeTestApp({ config: { adminToken: ADMIN_TOKEN } });
    const token = await addTestToken(services);
    // Stored before the limits existed: 50 slow patterns.
    await services.sql('UPDATE tokens SET ignore_paths = ? WHERE id = ?', [JSON.stringify(Array(50).fill('[a-z]{1000}[0-9]')), token.id]);
    await services.sql('UPDATE install SET tokens_version = tokens_version + 1');
    await services.tokens.refresh();
    const started = performance.now();
    const res = await app.request('/collect', hitRequest(`/${'a'.repeat(2000)}`));
    expect(performance.now() - started).toBeLessThan(200);
    expect(res.status).toBe(204);
    expect(res.headers.get('x-analytics-ignored')).toBe('ignored-path');
    const browser = await login(app);
    const page = await (await app.request('/admin/analytics/analyticstokens/', { headers: { cookie: browser.cookie } })).text();
    expect(page).toContain('Ignore path unusable, so it matches every path');
  });
});

describe('a rate limiter others cannot reset', () => {
  it('keeps limiting a client however many other addresses come and go past its memory', async () => {
    // The limiter of /collect with a small memory: 5,000 other addresses pass through a map of 1,000.
    const app = new Hono();
    const checkRate = rateLimiter({ max: 5, maxClients: 1_000 });
    app.post('/collect', (c) => {
      checkRate(clientAddress(c, true));
      return c.body(null, 204);
    });
    app.onError((error, c) => (error instanceof HTTPException ? c.body(null, error.status) : c.body(null, 500)));
    const from = (address: string) => ({ method: 'POST', headers: { 'x-forwarded-for': address } });
    for (let i = 0; i < 5; i += 1) expect((await app.request('/collect', from('203.0.113.9'))).status).toBe(204);
    expect((await app.request('/collect', from('203.0.113.9'))).status).toBe(429);
    for (let batch = 0; batch < 5_000; batch += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, i) => app.request('/collect', from(`10.0.${(batch + i) >> 8}.${(batch + i) & 255}`))));
      // The limited client keeps knocking: it is never the least recently seen.
      expect((await app.request('/collect', from('203.0.113.9'))).status).toBe(429);
    }
  });

  it('gives a client a new window once its own has run out, and counts each client apart', async () => {
    // The limiter reads the clock: it is moved on rather than waited for.
    vi.useFakeTimers({ toFake: ['Date'] });
    onTestFinished(() => void vi.useRealTimers());
    const app = new Hono();
    const checkRate = rateLimiter({ max: 2, windowMs: 60_000 });
    app.post('/collect', (c) => {
      checkRate(clientAddress(c, true));
      return c.body(null, 204);
    });
    app.onError((error, c) => (error instanceof HTTPException ? c.body(null, error.status) : c.body(null, 500)));
    const from = (address: string) => app.request('/collect', { method: 'POST', headers: { 'x-forwarded-for': address } });
    expect([(await from('203.0.113.1')).status, (await from('203.0.113.1')).status, (await from('203.0.113.1')).status]).toEqual([204, 204, 429]);
    // Another client in between has its own count, and the first is still limited when it comes back.
    expect((await from('203.0.113.2')).status).toBe(204);
    expect((await from('203.0.113.1')).status).toBe(429);
    vi.setSystemTime(Date.now() + 59_000);
    expect((await from('203.0.113.1')).status).toBe(429);
    vi.setSystemTime(Date.now() + 1_000);
    // The window ran out: two more, then limited again.
    expect([(await from('203.0.113.1')).status, (await from('203.0.113.1')).status, (await from('203.0.113.1')).status]).toEqual([204, 204, 429]);
  });

  it('counts an IPv6 /64 as one client at /collect', async () => {
    const { app } = await makeTestApp({ config: { rateLimitPerMinute: 5, trustProxy: true } });
    const from = (address: string) => hitRequest('/p', { 'x-forwarded-for': address });
    // Stepping through a /64 does not help.
    for (let i = 0; i < 5; i += 1) expect((await app.request('/collect', from(`2001:db8:5:5::${i + 1}`))).status).toBe(204);
    expect((await app.request('/collect', from('2001:db8:5:5:ffff::abcd'))).status).toBe(429);
    expect((await app.request('/collect', from('2001:db8:5:6::1'))).status).toBe(204);
  });
});

describe('slow clients are cut off', () => {
  it('a client dribbling its headers is cut off within 15 s, while 50 slow connections do not hold up ordinary hits', async () => {
    const collector = await startCollector({ ANALYTICS_DB: join(dir, 'slow.db'), ANALYTICS_GA_URL: ga.url });
    stopAfterTest(collector);
    const { hostname, port } = new URL(collector.url);
    const sockets: Socket[] = [];
    const dribble = (socket: Socket) => {
      const text = 'POST /collect HTTP/1.1\r\nHost: x\r\nX-Slow: ';
      let i = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        socket.write(text[i % text.length] as string);
        i += 1;
      }, 500);
      socket.on('close', () => clearInterval(timer));
    };
    const closedAfter: number[] = [];
    const opened = Date.now();
    for (let i = 0; i < 50; i += 1) {
      const socket = connect(Number(port), hostname);
      socket.on('error', () => undefined);
      socket.on('close', () => closedAfter.push(Date.now() - opened));
      sockets.push(socket);
      dribble(socket);
    }
    try {
      // Ordinary hits are answered quickly meanwhile.
      for (let i = 0; i < 20; i += 1) {
        const started = Date.now();
        const res = await fetch(`${collector.url}/collect`, hitRequest(`/ordinary/${i}`));
        expect(res.status).toBe(204);
        expect(Date.now() - started).toBeLessThan(1_000);
      }
      await until(() => closedAfter.length === 50, 15_000);
      expect(Math.max(...closedAfter)).toBeLessThan(15_000);
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  }, 30_000);
});

describe('bodies cut short', () => {
  it('a body that never arrives whole is a 400 counted once, never an error in the log, and changes nothing', async () => {
    const collector = await startCollector({
      ANALYTICS_DB: join(dir, 'cut-short.db'),
      ANALYTICS_GA_URL: ga.url,
      ANALYTICS_EVENTS_KEY: EVENTS_KEY,
      ANALYTICS_ADMIN_TOKEN: ADMIN_TOKEN,
      ANALYTICS_METRICS_TOKEN: METRICS_TOKEN,
    });
    stopAfterTest(collector);
    const { hostname, port } = new URL(collector.url);
    // The headers promise 100 bytes, or a chunked body; 9 come, then the client goes (a closed tab, a lost mobile
    // connection). A chunked body is read by the body limit, a sized one by the handler: both are covered.
    const cutShort = (path: string, headers: string, how: 'end' | 'reset', framing: 'sized' | 'chunked' = 'sized') =>
      new Promise<string>((resolve) => {
        const socket = connect(Number(port), hostname);
        let answer = '';
        socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
        socket.on('error', () => undefined);
        socket.on('close', () => resolve(answer));
        socket.on('connect', () => {
          const start = `POST ${path} HTTP/1.1\r\nHost: x\r\n${headers}`;
          socket.write(framing === 'sized' ? `${start}Content-Length: 100\r\n\r\n{"path":"` : `${start}Transfer-Encoding: chunked\r\n\r\n9\r\n{"path":"\r\n`);
          setTimeout(() => (how === 'end' ? socket.end() : socket.resetAndDestroy()), 50);
        });
      });
    const sent: Array<Promise<string>> = [];
    for (const framing of ['sized', 'chunked'] as const) {
      for (const how of ['end', 'reset'] as const) {
        for (let i = 0; i < 10; i += 1) sent.push(cutShort('/collect', `User-Agent: ${CHROME}\r\n`, how, framing));
        sent.push(cutShort('/api/events', `Authorization: Bearer ${EVENTS_KEY}\r\nContent-Type: application/json\r\n`, how, framing));
        sent.push(cutShort('/api/admin/tokens', `Authorization: Bearer ${ADMIN_TOKEN}\r\nContent-Type: application/json\r\n`, how, framing));
        // The admin's pages, with no credential at all.
        sent.push(cutShort('/admin/login', 'Content-Type: application/x-www-form-urlencoded\r\n', how, framing));
        sent.push(cutShort('/admin/analytics/analyticstokens/add/', 'Content-Type: application/x-www-form-urlencoded\r\n', how, framing));
      }
    }
    await Promise.all(sent);
    const metrics = async () => (await fetch(`${collector.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
    await until(async () => /analytics_hits_refused_total\{reason="cut-short"\} 40\b/.test(await metrics()));
    // Nothing was queued or made, and the collector takes the next hit as ever.
    expect(await metrics()).toMatch(/analytics_hits_received_total 0\b/);
    const tokens = (await (await fetch(`${collector.url}/api/admin/tokens`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { tokens: unknown[] };
    expect(tokens.tokens).toHaveLength(1);
    expect((await fetch(`${collector.url}/collect`, hitRequest('/after-the-cut'))).status).toBe(204);
    // Anybody can send these: not one line each in the log, and no stack traces.
    const output = collector.output();
    expect(output).not.toContain('error:');
    expect(output).not.toMatch(/\n\s+at /);
    expect(output).not.toContain('aborted');
  }, 30_000);
});

describe('errors nobody expected', () => {
  it('answer 500 and are logged with their stack, at most once every 10 s per route and kind with a count, so that none hides another', async () => {
    const log = recordingLogger();
    const clock = fakeClock();
    const { app, services } = await makeTestApp({ log, clock, config: { gaUrl: ga.url, adminToken: ADMIN_TOKEN, eventsKey: EVENTS_KEY } });
    await addTestToken(services);
    // A fault any hit would meet (a bug, say), found by anybody's requests.
    services.tokens.recipients = () => {
      throw new Error('a fault every hit meets');
    };
    for (let i = 0; i < 50; i += 1) {
      const res = await app.request('/collect', hitRequest(`/fault/${i}`));
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: 'internal error' });
    }
    const faults = () => log.lines.filter((line) => line.includes('a fault every hit meets'));
    expect(faults()).toHaveLength(1);
    expect(faults()[0]).toMatch(/^POST \/collect failed Error: a fault every hit meets\n\s+at /);
    // Another fault elsewhere still gets its own line meanwhile: one that anybody can repeat hides no other.
    services.store.saveHostStats = async () => {
      throw new TypeError('a fault of another route');
    };
    const stats = await app.request('/api/stats', {
      method: 'PUT',
      headers: { authorization: `Bearer ${EVENTS_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ users: 1, tokens: 1, apps: [] }),
    });
    expect(stats.status).toBe(500);
    expect(log.lines.filter((line) => line.includes('a fault of another route'))).toHaveLength(1);
    // The admin's pages log theirs the same way.
    services.store.hostStats = async () => {
      throw new TypeError('a fault of an admin page');
    };
    const admin = await login(app);
    for (let i = 0; i < 5; i += 1) expect((await app.request('/admin/analytics/about/', { headers: { cookie: admin.cookie } })).status).toBe(500);
    expect(log.lines.filter((line) => line.includes('a fault of an admin page'))).toHaveLength(1);
    clock.advance(10_000);
    expect((await app.request('/collect', hitRequest('/fault/later'))).status).toBe(500);
    expect(faults()).toHaveLength(2);
    expect(faults()[1]).toContain('POST /collect failed (49 more like it since the last line)');
  });
});

describe('connections', () => {
  it('one client address cannot take every connection: past its own cap its new ones are closed, others are served', async () => {
    const collector = await startCollector({ ANALYTICS_DB: join(dir, 'per-address.db'), ANALYTICS_GA_URL: ga.url, ANALYTICS_MAX_CONNECTIONS_PER_ADDRESS: '5' });
    stopAfterTest(collector);
    const { hostname, port } = new URL(collector.url);
    const open = (localAddress: string) =>
      new Promise<{ socket: Socket; closed: Promise<void> }>((resolve) => {
        const socket = connect({ port: Number(port), host: hostname, localAddress });
        socket.on('error', () => undefined);
        const closed = new Promise<void>((done) => socket.on('close', () => done()));
        // Half a request, as a slow client would hold it.
        socket.on('connect', () => socket.write('POST /collect HTTP/1.1\r\nHost: x\r\n'));
        socket.on('connect', () => resolve({ socket, closed }));
      });
    const held = [];
    for (let i = 0; i < 5; i += 1) held.push(await open('127.0.0.1'));
    try {
      const sixth = await open('127.0.0.1');
      const closedAt = await Promise.race([sixth.closed.then(() => 'closed'), new Promise((r) => setTimeout(() => r('open'), 2_000))]);
      expect(closedAt).toBe('closed');
      expect(held.every((h) => !h.socket.destroyed)).toBe(true);
      // Another address is served meanwhile.
      const status = await new Promise<number>((resolve, reject) => {
        const req = request(
          { host: hostname, port: Number(port), localAddress: '127.0.0.2', method: 'POST', path: '/collect', headers: hitRequest('/other-client').headers },
          (res) => resolve(res.statusCode ?? 0),
        );
        req.on('error', reject);
        req.end(hitRequest('/other-client').body);
      });
      expect(status).toBe(204);
    } finally {
      for (const h of held) h.socket.destroy();
    }
  }, 30_000);
});

describe('a database that cannot be written', () => {
  it('a full disk is a clear 503 with Retry-After (collect, events, healthz, admin), recovering by itself, losing nothing', async () => {
    const { app, services } = await makeTestApp({
      database: { sqliteFile: join(dir, 'full.db') },
      config: { eventsKey: EVENTS_KEY, adminToken: ADMIN_TOKEN, gaUrl: ga.url },
    });
    stopAfterTest({ stop: () => services.store.close() });
    const token = await addTestToken(services);
    expect((await app.request('/collect', hitRequest('/before'))).status).toBe(204);
    const browser = await login(app);
    // The file may not grow any more: as if the disk were full.
    const [{ pages }] = (await services.sql<{ pages: number }>('SELECT page_count AS pages FROM pragma_page_count()')) as [{ pages: number }];
    await services.sql(`PRAGMA max_page_count = ${Number(pages)}`);
    const big = `/${'x'.repeat(2000)}`;
    let refused: Response | undefined;
    for (let i = 0; i < 200 && !refused; i += 1) {
      const res = await app.request('/collect', hitRequest(`${big}/${i}`));
      if (res.status !== 204) refused = res;
    }
    expect(refused?.status).toBe(503);
    expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused?.text()).toMatch(/disk is full/);
    const health = await app.request('/healthz');
    expect(health.status).toBe(503);
    expect(health.headers.get('retry-after')).not.toBeNull();
    const page = await (await app.request('/admin/analytics/analyticstokens/', { headers: { cookie: browser.cookie } })).text();
    expect(page).toContain('The database cannot be written right now: the disk is full');
    // A host's events meet the same wall: refused with 503, or taken if they still fit; never a 500.
    const event = await app.request('/api/events', {
      method: 'POST',
      headers: { authorization: `Bearer ${EVENTS_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ namespace: 'n', task: `t-${'y'.repeat(90)}`, label: 'z'.repeat(100) }),
    });
    expect([202, 503]).toContain(event.status);
    const answered = (await outboxEvents(services)).length;

    // Room again: everything recovers by itself, and what was answered 204 is all there.
    await services.sql('PRAGMA max_page_count = 1073741823');
    expect((await app.request('/healthz')).status).toBe(200);
    expect((await app.request('/collect', hitRequest('/after'))).status).toBe(204);
    await services.outbox.settled();
    expect((await outboxEvents(services)).length).toBe(answered + 1);
    await queueEvents(services, [{ tokenId: token.id, name: 'task_event', params: { task: 'x' } }]);
  });

  it('a database locked past its busy timeout is a 503, not a hang or a crash', async () => {
    const { app, release } = await appBesideALock('locked.db');
    try {
      const started = Date.now();
      const res = await app.request('/collect', hitRequest('/while-locked'));
      expect(res.status).toBe(503);
      expect(await res.text()).toMatch(/locked/);
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      release();
    }
    expect((await app.request('/collect', hitRequest('/after-lock'))).status).toBe(204);
  }, 20_000);
});

describe('the log while the database cannot be written', () => {
  it('says so at most once every 10 s with a count, however many requests are refused', async () => {
    const log = recordingLogger();
    const clock = fakeClock(Date.now());
    const { app, services } = await makeTestApp({ database: { sqliteFile: join(dir, 'full-log.db') }, config: { gaUrl: ga.url }, log, clock });
    stopAfterTest({ stop: () => services.store.close() });
    await addTestToken(services);
    const [{ pages }] = (await services.sql<{ pages: number }>('SELECT page_count AS pages FROM pragma_page_count()')) as [{ pages: number }];
    await services.sql(`PRAGMA max_page_count = ${Number(pages)}`);
    const big = `/${'x'.repeat(2000)}`;
    let refused = 0;
    for (let i = 0; i < 300 && refused < 50; i += 1) {
      if ((await app.request('/collect', hitRequest(`${big}/${i}`))).status === 503) refused += 1;
    }
    expect(refused).toBe(50);
    const lines = () => log.lines.filter((line) => line.includes('the disk is full'));
    expect(lines()).toHaveLength(1);
    clock.advance(10_000);
    expect((await app.request('/collect', hitRequest(`${big}/later`))).status).toBe(503);
    expect(lines()).toHaveLength(2);
    expect(lines()[1]).toContain('50 requests answered 503 since the last line');
    await services.sql('PRAGMA max_page_count = 1073741823');
  });
});

describe('health checks while the database is locked', () => {
  it('share one look at the database, so visitors calling /healthz do not queue waits in front of the hits', async () => {
    const { app, release } = await appBesideALock('locked-health.db');
    try {
      // A refused write: from now on each look at the database tries a write, which waits out the busy timeout.
      expect((await app.request('/collect', hitRequest('/while-locked'))).status).toBe(503);
      const started = Date.now();
      const answers = await Promise.all([
        ...Array.from({ length: 5 }, () => app.request('/healthz')),
        app.request('/collect', hitRequest('/behind-the-checks')),
      ]);
      expect(answers.map((res) => res.status)).toEqual([503, 503, 503, 503, 503, 503]);
      // One look (5 s) and the hit's own wait (5 s), not one look per request.
      expect(Date.now() - started).toBeLessThan(12_000);
    } finally {
      release();
    }
    expect((await app.request('/healthz')).status).toBe(200);
  }, 60_000);
});

describe('a relay stopped and started again', () => {
  it('delivers after the second start', async () => {
    const { services } = await makeTestApp({ config: { gaUrl: ga.url } });
    const token = await addTestToken(services);
    services.relay.start();
    await services.relay.stop();
    services.relay.start();
    stopAfterTest(services.relay);
    await queueEvents(services, [{ tokenId: token.id, name: 'task_event', params: { namespace: 'n', task: 'again' } }]);
    await ga.waitFor(() => ga.delivered().length === 1, 5_000);
  });
});

describe('the admin API under a mount prefix', () => {
  it('answers a new token with a Location that includes the prefix', async () => {
    const { createAnalytics } = await import('../../server/index.ts');
    const analytics = await createAnalytics({ database: ':memory:', env: { ANALYTICS_ADMIN_TOKEN: ADMIN_TOKEN } });
    stopAfterTest(analytics);
    const host = new Hono();
    host.route('/analytics', analytics.app);
    const res = await host.request('/analytics/api/admin/tokens', {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'P', measurementId: 'G-PREFIX1' }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: number };
    expect(res.headers.get('location')).toBe(`/analytics/api/admin/tokens/${id}`);
  });
});
