import { describe, expect, it } from 'vitest';
import type { FakeGa, RecordedRequest } from '../../harness/fake-ga.ts';
import { fieldsSentPerFeature } from '../../server/admin/about.ts';
import type { RelayOptions } from '../../server/delivery/relay.ts';
import { historyOf, HISTORY_HOURS } from '../../server/admin/delivery-history.ts';
import { featureOfEvent, type Feature } from '../../server/tokens/features.ts';
import { addTestToken, DIALECTS, fakeClock, makeTestApp, queueEvents, until, type TestDatabase } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, getPage, login, recordingLogger } from '../helpers/admin.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const EVENTS_KEY = 'events-key-for-tests-0123456789';
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const HOST_STATS = { users: 31, tokens: 7, apps: ['forum', 'billing'] };

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

/**
 * An admin app delivering to the fake GA, one request at a time (so the order GA received them in is the order
 * they were recorded in), with two tokens whose secrets are easy to look for.
 */
async function setup(database: TestDatabase = 'sqlite', options: { clock?: ReturnType<typeof fakeClock>; relay?: RelayOptions } = {}) {
  const made = await makeTestApp({
    database,
    clock: options.clock,
    config: { adminToken: ADMIN_TOKEN, eventsKey: EVENTS_KEY, gaUrl: ga.url },
    relay: { concurrency: 1, ...options.relay },
    dailyStats: { stats: () => HOST_STATS },
  });
  const { app, services } = made;
  stopAfterTest({
    async stop() {
      await services.relay.stop();
      await services.store.close();
    },
  });
  const a = await addTestToken(services, { apiSecret: 'sEcReT-of-token-a-7f3c9e' });
  const b = await addTestToken(services, { apiSecret: 'sEcReT-of-token-b-19d2aa' });
  return { ...made, a, b };
}

/** Page views from two browsers, a task event through the HTTP API and a daily-stats run, each kind delivered in turn. */
async function sendEveryKind(made: Awaited<ReturnType<typeof setup>>): Promise<void> {
  const { app, services } = made;
  const hit = (path: string, userAgent: string) =>
    app.request('/collect', { method: 'POST', headers: { 'user-agent': userAgent }, body: JSON.stringify({ path, title: `Title of ${path}`, language: 'en-GB' }) });
  for (const [path, ua] of [['/one', CHROME], ['/two', CHROME], ['/three', IPHONE]] as const) expect((await hit(path, ua)).status).toBe(204);
  await services.relay.drain();
  const event = await app.request('/api/events', {
    method: 'POST',
    headers: { authorization: `Bearer ${EVENTS_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'billing.invoices', task: 'send_reminders', result: 'Success', value: 4 }),
  });
  expect(event.status).toBe(202);
  await services.relay.drain();
  // A host's own stats event goes under the daily-stats switch, with its namespace, task and result.
  const stat = await app.request('/api/events', {
    method: 'POST',
    headers: { authorization: `Bearer ${EVENTS_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ namespace: 'forum', task: 'topics', label: 'open', result: 'counted', value: 42, type: 'stats' }),
  });
  expect(stat.status).toBe(202);
  await services.relay.drain();
  expect((await services.dailyStats.runNow()).queued).toBeGreaterThan(0);
  await services.relay.drain();
}

const collectRequestsTo = (measurementId: string): RecordedRequest[] => ga.requests.filter((r) => r.path === '/mp/collect' && r.measurementId === measurementId);

/** The feature of a request GA received, by its events' names (a request never mixes features). */
function featureOfRequest(request: RecordedRequest): Feature {
  const features = new Set((request.body?.events ?? []).map((event) => featureOfEvent(String(event.name))));
  expect(features.size).toBe(1);
  return [...features][0] as Feature;
}

/** Dotted paths of every scalar in `value`, worked out here on its own so the test does not lean on the code it checks. */
function paths(value: unknown, prefix = ''): string[] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    return Object.entries(value).flatMap(([key, inner]) => paths(inner, prefix ? `${prefix}.${key}` : key));
  }
  return [prefix];
}

describe.each(DIALECTS)('what was sent to a token, on %s', (dialect) => {
  it('the API lists exactly what GA received, newest first, and never the secret', async () => {
    const made = await setup(dialect);
    const { app, a, b } = made;
    await sendEveryKind(made);

    const received = collectRequestsTo(a.measurementId);
    // Two browsers make two page-view requests; one task event; the daily stats.
    expect(received.map(featureOfRequest)).toEqual(['pageViews', 'pageViews', 'taskEvents', 'dailyStats', 'dailyStats']);
    expect(received.every((r) => r.apiSecret === a.apiSecret)).toBe(true); // the secret was in play, in the URL

    const res = await api(app, 'GET', `/tokens/${a.id}/sent`);
    expect(res.status).toBe(200);
    const text = await res.text();
    const { requests } = JSON.parse(text) as { requests: Array<{ at: number; status: number; events: number; body: string }> };
    expect(requests.map(({ status, events, body }) => ({ status, events, body }))).toEqual(
      [...received].reverse().map((r) => ({ status: r.answer, events: r.body?.events?.length, body: r.rawBody })),
    );
    expect(requests.map((r) => Object.keys(r).sort())).toEqual(requests.map(() => ['at', 'body', 'events', 'status']));
    expect(requests.every((r, i) => typeof r.at === 'number' && (i === 0 || r.at <= (requests[i - 1] as { at: number }).at))).toBe(true);
    for (const secret of [a.apiSecret, b.apiSecret, encodeURIComponent(a.apiSecret)]) expect(text).not.toContain(secret);

    // Each token sees its own requests only.
    const other = (await (await api(app, 'GET', `/tokens/${b.id}/sent`)).json()) as { requests: Array<{ body: string }> };
    expect(other.requests.map((r) => r.body)).toEqual([...collectRequestsTo(b.measurementId)].reverse().map((r) => r.rawBody));
    expect((await api(app, 'GET', '/tokens/999/sent')).status).toBe(404);
  });
});

describe('the sent page', () => {
  it('shows each request readably, with its exact JSON, and no secret', async () => {
    const made = await setup();
    const { app, a, b } = made;
    await sendEveryKind(made);
    const received = collectRequestsTo(a.measurementId);
    const browser = await login(app);
    const res = await getPage(app, `/admin/analytics/analyticstokens/${a.id}/sent/`, browser.cookie);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html.match(/<section class="sent-request"/g)).toHaveLength(received.length);
    for (const name of ['page_view', 'task_event', 'daily_stats', 'installed_app']) expect(html).toContain(`<td class="mono">${name}</td>`);
    // Request-level fields and event parameters, names and values.
    for (const field of ['client_id', 'user_properties.app_version.value', 'device.browser', 'page_location', 'namespace', 'label']) {
      expect(html).toContain(`<dt>${field}</dt>`);
    }
    expect(html).toContain(`<code>${escapeHtml(JSON.stringify(made.services.identity.uuid))}</code>`);
    expect(html).toContain(escapeHtml('"billing.invoices"'));
    expect(html).toContain('GA answered');
    // The exact bodies are there, as text.
    for (const r of received) expect(html).toContain(`<pre class="json">${escapeHtml(r.rawBody)}</pre>`);
    for (const secret of [a.apiSecret, b.apiSecret]) expect(html).not.toContain(secret);
    expect(html).not.toContain(CHROME); // the User-Agent itself never left, so it is not shown as sent
    // Linked from the token list.
    const list = await (await getPage(app, '/admin/analytics/analyticstokens/', browser.cookie)).text();
    expect(list).toContain(`href="/admin/analytics/analyticstokens/${a.id}/sent/"`);
    expect((await getPage(app, '/admin/analytics/analyticstokens/999/sent/', browser.cookie)).status).toBe(404);
  });

  it('says so when nothing was sent yet', async () => {
    const { app, a } = await setup();
    const browser = await login(app);
    const html = await (await getPage(app, `/admin/analytics/analyticstokens/${a.id}/sent/`, browser.cookie)).text();
    expect(html).toContain('Nothing has been sent to this token yet.');
  });

  it('keeps every request of a round that sent many, exactly as GA received each', async () => {
    const { services, a, app } = await setup();
    await queueEvents(
      services,
      Array.from({ length: 200 }, (_, i) => ({ tokenId: a.id, name: 'task_event', params: { namespace: 'jobs', task: `t${i}` } })),
    );
    await services.relay.drain();
    const received = collectRequestsTo(a.measurementId);
    expect(received).toHaveLength(8);
    const { requests } = (await (await api(app, 'GET', `/tokens/${a.id}/sent`)).json()) as { requests: Array<{ body: string }> };
    expect(requests.map((r) => r.body)).toEqual([...received].reverse().map((r) => r.rawBody));
  });

  /**
   * A relay delivering by itself on a clock that stands still unless told (requests sent within a second of the
   * log's last write wait for the next), and what its API lists.
   */
  async function busyToken(relay: RelayOptions = {}) {
    const clock = fakeClock(Date.now());
    const made = await setup('sqlite', { clock, relay });
    const { app, services, a } = made;
    services.relay.start();
    const listed = async () => ((await (await api(app, 'GET', `/tokens/${a.id}/sent`)).json()) as { requests: Array<{ body: string }> }).requests.map((r) => r.body);
    const answered = () => collectRequestsTo(a.measurementId).filter((r) => typeof r.answer === 'number');
    const exactlyAsReceived = () => [...answered()].reverse().map((r) => r.rawBody);
    /** 25 events, one full request: resolves once GA has it. */
    const sendOneRequest = async (n: number) => {
      await queueEvents(
        services,
        Array.from({ length: 25 }, (_, i) => ({ tokenId: a.id, name: 'task_event', params: { namespace: 'jobs', task: `round ${n} task ${i}` } })),
      );
      await ga.waitFor(() => collectRequestsTo(a.measurementId).length === n, 5_000);
    };
    return { ...made, clock, listed, exactlyAsReceived, sendOneRequest };
  }

  it('gets a busy token’s requests a second after the last ones by itself, and what still waits when the relay stops', async () => {
    const { services, clock, listed, exactlyAsReceived, sendOneRequest, a, b } = await busyToken();
    await sendOneRequest(1);
    // The first after a quiet second is written at once, with its round.
    await until(async () => (await listed()).length === 1);
    expect(await listed()).toEqual(exactlyAsReceived());
    await sendOneRequest(2);
    expect(await listed()).toHaveLength(1);
    clock.advance(1_000);
    // Nothing else is sent or drained: the relay comes back for the waiting request itself.
    await until(async () => (await listed()).length === 2, 3_000);
    expect(await listed()).toEqual(exactlyAsReceived());

    await sendOneRequest(3);
    expect(await listed()).toHaveLength(2);
    await services.relay.stop();
    expect(await listed()).toEqual(exactlyAsReceived());
    expect(await listed()).toHaveLength(3);
    // Two of them waited as the bytes the connection sent, whose head carries the secret in its URL: none of it.
    const text = JSON.stringify(await listed());
    for (const secret of [a.apiSecret, b.apiSecret, encodeURIComponent(a.apiSecret)]) expect(text).not.toContain(secret);
    expect(text).not.toContain('/mp/collect');
  });

  it('writes what waits for the log when a stop cuts the last round short', async () => {
    const { services, listed, exactlyAsReceived, sendOneRequest } = await busyToken({ stopGraceMs: 100 });
    await sendOneRequest(1);
    await until(async () => (await listed()).length === 1);
    await sendOneRequest(2);
    expect(await listed()).toHaveLength(1);
    // The next request is never answered: the stop's grace runs out in the middle of its round.
    ga.setMode({ kind: 'hang' });
    await sendOneRequest(3);
    await services.relay.stop();
    expect(await listed()).toEqual(exactlyAsReceived());
    expect(await listed()).toHaveLength(2);
  });

  it('costs only the log, never a delivery, when the log cannot be written', async () => {
    const log = recordingLogger();
    const made = await makeTestApp({ database: 'sqlite', log, config: { adminToken: ADMIN_TOKEN, gaUrl: ga.url } });
    const { services } = made;
    stopAfterTest({ stop: () => services.store.close() });
    const a = await addTestToken(services);
    // A real fault of the database, for this table alone.
    await services.sql('DROP TABLE sent_requests');
    await queueEvents(services, Array.from({ length: 30 }, (_, i) => ({ tokenId: a.id, name: 'task_event', params: { namespace: 'jobs', task: `t${i}` } })));
    await services.relay.drain();
    expect(collectRequestsTo(a.measurementId).flatMap((r) => r.body?.events ?? [])).toHaveLength(30);
    expect(await services.store.pendingCount()).toBe(0);
    expect(log.lines.some((line) => line.includes(`token ${a.id}:`) && line.includes("not written to the admin's log"))).toBe(true);
  });

  it('shows at most the last 200 requests', async () => {
    const { app, services, a } = await setup();
    for (let i = 0; i < 205; i += 1) await services.store.recordSent(a.id, [{ at: 1000 + i, status: 204, events: 1, body: `{"n":${i}}` }], 1000);
    const { requests } = (await (await api(app, 'GET', `/tokens/${a.id}/sent`)).json()) as { requests: Array<{ at: number }> };
    expect(requests).toHaveLength(200);
    expect(requests[0]?.at).toBe(1204);
    expect(requests[199]?.at).toBe(1005);
  });
});

describe('anonymous access', () => {
  it('is refused: the API without the bearer, the pages without a session', async () => {
    const { app, a } = await setup();
    expect((await api(app, 'GET', `/tokens/${a.id}/sent`, undefined, null)).status).toBe(401);
    expect((await api(app, 'GET', `/tokens/${a.id}/sent`, undefined, 'wrong-admin-token-0123456789')).status).toBe(401);
    for (const path of [`/admin/analytics/analyticstokens/${a.id}/sent/`, '/admin/analytics/about/']) {
      const res = await getPage(app, path);
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe(`/admin/login?next=${encodeURIComponent(path)}`);
    }
  });
});

describe('the about page', () => {
  it('lists every field the relay actually sends, per feature, and nothing it does not', async () => {
    const made = await setup();
    await sendEveryKind(made);
    const sent = new Map<Feature, { request: Set<string>; event: Set<string>; events: Set<string> }>();
    for (const r of ga.requests.filter((x) => x.path === '/mp/collect')) {
      const { events, ...rest } = r.body ?? {};
      const entry = sent.get(featureOfRequest(r)) ?? { request: new Set(), event: new Set(), events: new Set() };
      for (const path of paths(rest)) entry.request.add(path);
      for (const event of events ?? []) {
        entry.events.add(String(event.name));
        for (const path of paths(event)) entry.event.add(path);
      }
      sent.set(featureOfRequest(r), entry);
    }
    const listed = fieldsSentPerFeature();
    expect(listed.map((f) => f.feature).sort()).toEqual([...sent.keys()].sort());
    for (const feature of listed) {
      const actual = sent.get(feature.feature);
      expect({ feature: feature.feature, request: new Set(feature.request), event: new Set(feature.event), events: new Set(feature.events) }).toEqual({
        feature: feature.feature,
        ...actual,
      });
    }
    expect(listed.find((f) => f.feature === 'pageViews')?.request).toContain('device.browser');
    expect(listed.find((f) => f.feature === 'taskEvents')?.request).not.toContain('device.category');

    // The page shows each field, what it means, and live examples from this install.
    const { app, services } = made;
    const browser = await login(app);
    const res = await getPage(app, '/admin/analytics/about/', browser.cookie);
    expect(res.status).toBe(200);
    const html = await res.text();
    for (const feature of listed) {
      const section = html.slice(html.indexOf(`id="feature-${feature.feature}"`), html.indexOf('</section>', html.indexOf(`id="feature-${feature.feature}"`)));
      for (const field of [...feature.request, ...feature.event]) expect(section).toContain(`data-field="${field}"`);
    }
    expect(html).not.toContain('not described yet');
    expect(html).toContain(escapeHtml(`"client_id": "${services.identity.uuid}"`));
    expect(html).toContain(escapeHtml(`"value": "${services.config.appVersion}"`));
    expect(html).toContain(escapeHtml('"label": "forum"')); // the host's own numbers, as the next daily run sends them
    for (const text of ['Remove the script tag', 'Untick a feature on a token', 'Delete the token', 'ANALYTICS_DISABLED=true', 'Do-Not-Track', 'Global Privacy Control', "localStorage['analytics:optout'] = '1'"]) {
      expect(html).toContain(escapeHtml(text));
    }
    for (const secret of [made.a.apiSecret, made.b.apiSecret]) expect(html).not.toContain(secret);
    const list = await (await getPage(app, '/admin/analytics/analyticstokens/', browser.cookie)).text();
    expect(list).toContain('href="/admin/analytics/about/"');
  });
});

describe('the delivery charts on the token list', () => {
  it('puts each stored hour under its bar and totals it per day', () => {
    const now = Date.UTC(2026, 0, 8, 10, 30);
    const hour = (h: number) => Date.UTC(2026, 0, 8, 10) - h * 3_600_000;
    const history = historyOf(
      1,
      [
        { tokenId: 1, hour: hour(0), delivered: 5, failed: 1 },
        { tokenId: 1, hour: hour(11), delivered: 7, failed: 0 }, // 23:00 the day before
        { tokenId: 1, hour: hour(HISTORY_HOURS), delivered: 100, failed: 100 }, // just before the span
        { tokenId: 2, hour: hour(1), delivered: 9, failed: 9 },
      ],
      now,
    );
    expect(history.hours).toHaveLength(HISTORY_HOURS);
    expect(history.hours.at(-1)).toEqual({ hour: hour(0), delivered: 5, failed: 1 });
    expect(history.hours.at(-12)).toEqual({ hour: hour(11), delivered: 7, failed: 0 });
    expect({ delivered: history.delivered, failed: history.failed }).toEqual({ delivered: 12, failed: 1 });
    expect(history.days.at(-1)).toEqual({ day: '2026-01-08', delivered: 5, failed: 1 });
    expect(history.days.at(-2)).toEqual({ day: '2026-01-07', delivered: 7, failed: 0 });
    expect(history.days.reduce((sum, d) => sum + d.delivered, 0)).toBe(12);
  });

  it('draws a chart per token as inline SVG with its numbers as text, under the admin’s usual CSP', async () => {
    const { app, services, a } = await setup();
    const now = services.clock();
    const hourStart = now - (now % 3_600_000);
    await services.sql('INSERT INTO delivery_stats (token_id, hour, delivered, failed) VALUES (?, ?, ?, ?), (?, ?, ?, ?)', [
      a.id,
      hourStart - 3 * 3_600_000,
      40,
      2,
      a.id,
      hourStart,
      10,
      0,
    ]);
    const browser = await login(app);
    const res = await getPage(app, '/admin/analytics/analyticstokens/', browser.cookie);
    const html = await res.text();
    const figure = html.slice(html.indexOf(`id="deliveries-token-${a.id}"`), html.indexOf('</figure>', html.indexOf(`id="deliveries-token-${a.id}"`)));
    expect(figure).toContain('role="img"');
    expect(figure).toContain(`aria-label="Deliveries to ${a.name} in the last 7 days: 50 delivered, 2 failed."`);
    expect(figure).toContain('<pattern id="hatch-');
    expect(figure.match(/class="bar-delivered"/g)).toHaveLength(2);
    expect(figure.match(/class="bar-failed"/g)).toHaveLength(1);
    expect(figure).toContain('<div class="visually-hidden"><table>');
    expect(figure).toMatch(/<th scope="row">\d{4}-\d{2}-\d{2}<\/th><td>\d+<\/td><td>\d+<\/td>/);
    // One chart per token (token 1 included), no script and no style attribute for the CSP to refuse.
    expect(html.match(/<figure class="chart"/g)).toHaveLength((await services.tokens.list()).length);
    expect(html).not.toMatch(/<script|\sstyle="/);
    const failed = await getPage(app, '/admin/analytics/failed/', browser.cookie);
    expect(res.headers.get('content-security-policy')).toBe(failed.headers.get('content-security-policy'));
    expect(res.headers.get('content-security-policy')).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/);
  });
});

function escapeHtml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;').replaceAll("'", '&#39;');
}
