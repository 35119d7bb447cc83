import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DIALECTS, queueEvents, type TestServices } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, failEvents, makeAdminApp } from '../helpers/admin.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

const SECRET = 'sEcReT-api-secret-XYZ987';

const newToken = {
  name: 'Our property',
  measurementId: 'G-ABC123DEF4',
  apiSecret: SECRET,
  sendDailyStats: true,
  sendTaskEvents: true,
  sendPageViews: true,
  ignorePaths: ['^/private/', '\\.json$'],
};

/** The stored tokens, as rows, for checking that nothing changed. */
const storedTokens = async (services: TestServices): Promise<string> => JSON.stringify(await services.sql('SELECT * FROM tokens ORDER BY id'));

describe('admin API: tokens end to end', () => {
  it('creates, reads, edits each switch and deletes a token; the secret never comes back', async () => {
    const { app, services, log } = await makeAdminApp();
    const bodies: string[] = [];
    const call = async (method: string, path: string, body?: unknown) => {
      const res = await api(app, method, path, body);
      bodies.push(await res.clone().text());
      return res;
    };

    const created = await call('POST', '/tokens', newToken);
    expect(created.status).toBe(201);
    const token = (await created.json()) as { id: number; apiSecret: string };
    expect(created.headers.get('location')).toBe(`/api/admin/tokens/${token.id}`);
    expect(token).toEqual({ ...newToken, id: 2, apiSecret: '••••87' });

    const list = (await (await call('GET', '/tokens')).json()) as { tokens: Array<{ id: number; name: string }> };
    expect(list.tokens.map((t) => t.id)).toEqual([1, 2]);
    expect((await (await call('GET', '/tokens/2')).json()) as object).toMatchObject({ name: 'Our property' });
    expect(services.tokens.recipients('pageViews').map((t) => t.token.id)).toEqual([2]);

    for (const key of ['sendPageViews', 'sendTaskEvents', 'sendDailyStats'] as const) {
      const off = await call('PATCH', '/tokens/2', { [key]: false });
      expect(off.status).toBe(200);
      expect(((await off.json()) as Record<string, unknown>)[key]).toBe(false);
      const stored = await services.store.findToken(2);
      expect(stored?.[key]).toBe(false);
    }
    // The cached token directory heard about every change.
    expect(services.tokens.recipients('pageViews')).toEqual([]);
    expect(services.tokens.recipients('taskEvents')).toEqual([]);
    expect(services.tokens.recipients('dailyStats')).toEqual([]);
    const on = await call('PATCH', '/tokens/2', { sendPageViews: true, name: 'Renamed', ignorePaths: [] });
    expect((await on.json()) as object).toMatchObject({ sendPageViews: true, sendTaskEvents: false, name: 'Renamed', ignorePaths: [] });
    expect(services.tokens.recipients('pageViews').map((t) => t.token.id)).toEqual([2]);

    // A read sent back as it is (masked secret included) keeps the stored secret.
    const read = (await (await call('GET', '/tokens/2')).json()) as Record<string, unknown>;
    expect((await call('PATCH', '/tokens/2', read)).status).toBe(200);
    expect((await services.store.findToken(2))?.apiSecret).toBe(SECRET);
    // A new secret replaces it; an empty one removes it (and the relay then skips the token).
    await call('PATCH', '/tokens/2', { apiSecret: 'another-secret-value-1' });
    expect((await services.store.findToken(2))?.apiSecret).toBe('another-secret-value-1');
    const cleared = (await (await call('PATCH', '/tokens/2', { apiSecret: '' })).json()) as { apiSecret: string };
    expect(cleared.apiSecret).toBe('');
    expect(services.tokens.recipients('pageViews')).toEqual([]);

    // Deleting takes the token's queued events with it, and the outbox count follows.
    await call('PATCH', '/tokens/2', { apiSecret: SECRET });
    await queueEvents(services, [{ tokenId: 2, name: 'task_event', params: { task: 't' } }]);
    expect(await services.outbox.depth()).toBe(1);
    const deleted = await call('DELETE', '/tokens/2');
    expect(deleted.status).toBe(204);
    expect(await services.outbox.depth()).toBe(0);
    expect(await services.sql('SELECT * FROM outbox')).toEqual([]);
    expect((await call('GET', '/tokens/2')).status).toBe(404);
    expect(services.tokens.all().map((t) => t.token.id)).toEqual([1]);

    for (const body of bodies) {
      expect(body).not.toContain(SECRET);
      expect(body).not.toContain('another-secret-value-1');
      expect(body).not.toContain(ADMIN_TOKEN);
    }
    for (const line of log.lines) {
      expect(line).not.toContain(SECRET);
      expect(line).not.toContain(ADMIN_TOKEN);
    }
  });

  it.each([
    ['a 10-character secret as the mask alone', 'Ab3-dE6_gH', '••••'],
    ['a 20-character secret as the mask and its last two characters', 'Ab3-dE6_gHi9-kL2_nO5', '••••O5'],
  ])('reads back %s, and keeps it when the masked value is sent back', async (_, secret, masked) => {
    const { app, services } = await makeAdminApp();
    const created = await api(app, 'POST', '/tokens', { ...newToken, apiSecret: secret });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: number };

    const read = await api(app, 'GET', `/tokens/${id}`);
    expect(read.status).toBe(200);
    const token = (await read.json()) as Record<string, unknown>;
    expect(token.apiSecret).toBe(masked);

    // The masked value sent back, alone or with the whole read, leaves the stored secret as it was.
    expect((await api(app, 'PATCH', `/tokens/${id}`, { apiSecret: masked })).status).toBe(200);
    expect((await services.store.findToken(id))?.apiSecret).toBe(secret);
    const patched = await api(app, 'PATCH', `/tokens/${id}`, { ...token, name: 'Renamed' });
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as { apiSecret: string }).apiSecret).toBe(masked);
    expect(await services.store.findToken(id)).toMatchObject({ name: 'Renamed', apiSecret: secret });
  });

  it('preloads token 1 with the placeholder and shows its empty secret as empty', async () => {
    const { app } = await makeAdminApp();
    const one = (await (await api(app, 'GET', '/tokens/1')).json()) as Record<string, unknown>;
    expect(one).toEqual({
      id: 1,
      name: 'Project team',
      measurementId: 'G-XXXXXXXXXX',
      apiSecret: '',
      sendDailyStats: true,
      sendTaskEvents: true,
      sendPageViews: true,
      ignorePaths: ['^/admin/'],
    });
  });

  it('refuses bad bodies with 400 and a message naming the problem, changing nothing', async () => {
    const { app, services } = await makeAdminApp();
    const before = await storedTokens(services);
    const cases: Array<[string, string, unknown, RegExp]> = [
      ['POST', '/tokens', '{not json', /JSON/],
      ['POST', '/tokens', { ...newToken, name: '' }, /name/],
      ['POST', '/tokens', { ...newToken, name: 'x'.repeat(101) }, /name/],
      ['POST', '/tokens', { ...newToken, measurementId: 'UA-12345-1' }, /measurementId: .*G-/],
      ['POST', '/tokens', { ...newToken, measurementId: 'G-' }, /measurementId/],
      ['POST', '/tokens', { ...newToken, apiSecret: 42 }, /apiSecret/],
      ['POST', '/tokens', { ...newToken, apiSecret: 'has a space' }, /apiSecret/],
      ['POST', '/tokens', { ...newToken, sendPageViews: 'false' }, /sendPageViews/],
      ['POST', '/tokens', { ...newToken, ignorePaths: ['^/ok/', '(unclosed'] }, /ignorePaths\.1: "\(unclosed" is not a valid regular expression/],
      ['POST', '/tokens', { ...newToken, ignorePaths: '^/admin/' }, /ignorePaths/],
      ['POST', '/tokens', { ...newToken, sendPageview: false }, /sendPageview/],
      ['POST', '/tokens', { measurementId: 'G-ABC' }, /name/],
      ['POST', '/tokens', [], /expected object/i],
      ['PATCH', '/tokens/1', { ignorePaths: ['[z-a]'] }, /"\[z-a\]" is not a valid regular expression/],
      ['PATCH', '/tokens/1', { sendDailyStats: null }, /sendDailyStats/],
      ['PATCH', '/tokens/1', { id: 7 }, /id/],
      ['PATCH', '/tokens/1', 'null', /expected object/i],
      ['PATCH', '/tokens/1', '', /JSON/],
      ['POST', '/tokens/1/retry', { ids: ['x'] }, /ids/],
    ];
    for (const [method, path, body, message] of cases) {
      const res = await api(app, method, path, body);
      expect(res.status, `${method} ${path} ${JSON.stringify(body)}`).toBe(400);
      const answer = (await res.json()) as { error: string };
      expect(answer.error).toMatch(message);
    }
    expect(await storedTokens(services)).toBe(before);
  });

  it('answers 404 for unknown or malformed token ids', async () => {
    const { app } = await makeAdminApp();
    for (const id of ['99', '0', 'abc', '1.5', '-1', '01', '9'.repeat(30)]) {
      for (const [method, suffix, body] of [
        ['GET', '', undefined],
        ['PATCH', '', { name: 'x' }],
        ['DELETE', '', undefined],
        ['POST', '/validate', undefined],
        ['POST', '/retry', undefined],
      ] as const) {
        const res = await api(app, method, `/tokens/${id}${suffix}`, body);
        expect(res.status, `${method} /tokens/${id}${suffix}`).toBe(404);
        expect(await res.json()).toHaveProperty('error');
      }
    }
  });

  it.each(DIALECTS)('lists failed deliveries (GA text without the secret) and retries them (%s)', async (database) => {
    const { app, services } = await makeAdminApp({ database });
    onTestFinished(() => services.store.close());
    const created = (await (await api(app, 'POST', '/tokens', newToken)).json()) as { id: number };
    const now = services.clock();
    await queueEvents(services, [
      { tokenId: created.id, name: 'task_event', params: { task: 'a' }, occurredAt: now },
      { tokenId: created.id, name: 'task_event', params: { task: 'b' }, occurredAt: now },
    ]);
    const ids = await failEvents(services, created.id, `GA answered 400: bad request for api_secret=${SECRET}`);
    expect(await services.outbox.depth()).toBe(0);

    const failed = await api(app, 'GET', '/failed');
    const text = await failed.text();
    expect(text).not.toContain(SECRET);
    const list = JSON.parse(text) as { total: number; items: Array<{ id: number; tokenId: number; event: string; error: string }> };
    expect(list.total).toBe(2);
    expect(list.items[0]).toMatchObject({ tokenId: created.id, event: 'task_event' });
    expect(list.items[0]?.error).toContain('GA answered 400');

    const status = (await (await api(app, 'GET', '/status')).json()) as {
      install: { uuid: string; disabled: boolean };
      tokens: Array<{ tokenId: number; failed: number; skipped?: string; lastError: string | null }>;
    };
    expect(status.install).toMatchObject({ uuid: services.identity.uuid, disabled: false });
    expect(status.tokens.find((t) => t.tokenId === 1)?.skipped).toBe('placeholder measurement id');
    const mine = status.tokens.find((t) => t.tokenId === created.id);
    expect(mine?.failed).toBe(2);
    expect(mine?.lastError).not.toContain(SECRET);

    const one = await api(app, 'POST', `/tokens/${created.id}/retry`, { ids: [ids[0]] });
    expect(await one.json()).toEqual({ retried: 1 });
    const rest = await api(app, 'POST', `/tokens/${created.id}/retry`);
    expect(await rest.json()).toEqual({ retried: 1 });
    expect(await services.outbox.depth()).toBe(2);
    expect(((await (await api(app, 'GET', '/failed')).json()) as { total: number }).total).toBe(0);
  });
});

describe('admin API: validate against GA', () => {
  let ga: FakeGa;
  beforeAll(async () => {
    ga = await startFakeGa();
  });
  afterAll(async () => {
    await ga.close();
  });

  it('sends one sample of each enabled feature to /debug/mp/collect and returns GA validationMessages', async () => {
    const { app } = await makeAdminApp({ config: { gaUrl: ga.url } });
    const { id } = (await (await api(app, 'POST', '/tokens', newToken)).json()) as { id: number };
    const before = ga.requests.length;
    const res = await api(app, 'POST', `/tokens/${id}/validate`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(SECRET);
    const { results } = JSON.parse(text) as { results: Array<{ feature: string; validationMessages: unknown[]; error?: string }> };
    expect(results).toEqual([
      { feature: 'pageViews', validationMessages: [] },
      { feature: 'taskEvents', validationMessages: [] },
      { feature: 'dailyStats', validationMessages: [] },
    ]);
    const sent = ga.requests.slice(before);
    expect(sent).toHaveLength(3);
    for (const request of sent) {
      expect(request.path).toBe('/debug/mp/collect');
      expect(request.measurementId).toBe('G-ABC123DEF4');
      expect(request.apiSecret).toBe(SECRET);
      expect(request.body?.non_personalized_ads).toBe(true);
    }
    const pageView = sent.find((r) => r.body?.events?.[0]?.name === 'page_view');
    expect(pageView?.body?.device).toMatchObject({ category: 'desktop', browser: 'Chrome' });
    // Nothing reached the real collect endpoint: validation records nothing.
    expect(ga.accepted()).toHaveLength(0);

    await api(app, 'PATCH', `/tokens/${id}`, { sendPageViews: false, sendDailyStats: false });
    const fewer = (await (await api(app, 'POST', `/tokens/${id}/validate`)).json()) as { results: Array<{ feature: string }> };
    expect(fewer.results.map((r) => r.feature)).toEqual(['taskEvents']);
  });

  it('passes GA findings through and reports an unreachable GA without the URL', async () => {
    const fakeFetch: typeof fetch = async () =>
      new Response(JSON.stringify({ validationMessages: [{ fieldPath: 'events', description: 'Bad <b>thing</b>', validationCode: 'VALUE_INVALID' }] }), {
        status: 200,
      });
    const { app } = await makeAdminApp({ fetch: fakeFetch });
    const { id } = (await (await api(app, 'POST', '/tokens', { ...newToken, sendPageViews: false, sendDailyStats: false })).json()) as { id: number };
    const found = (await (await api(app, 'POST', `/tokens/${id}/validate`)).json()) as { results: unknown[] };
    expect(found.results).toEqual([
      { feature: 'taskEvents', validationMessages: [{ fieldPath: 'events', description: 'Bad <b>thing</b>', validationCode: 'VALUE_INVALID' }] },
    ]);

    const down = await makeAdminApp({ config: { gaUrl: 'http://127.0.0.1:9' } });
    const created = (await (await api(down.app, 'POST', '/tokens', newToken)).json()) as { id: number };
    const res = await api(down.app, 'POST', `/tokens/${created.id}/validate`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).not.toContain(SECRET);
    const { results } = JSON.parse(text) as { results: Array<{ error?: string }> };
    expect(results).toHaveLength(3);
    for (const result of results) expect(result.error).toMatch(/^network error/);
  });

  it('sends nothing for a skipped token or while analytics is disabled', async () => {
    const { app } = await makeAdminApp({ config: { gaUrl: ga.url } });
    const before = ga.requests.length;
    const placeholder = await api(app, 'POST', '/tokens/1/validate');
    expect(placeholder.status).toBe(409);
    expect(((await placeholder.json()) as { error: string }).error).toMatch(/placeholder measurement id/);

    const disabled = await makeAdminApp({ config: { gaUrl: ga.url, disabled: true } });
    const { id } = (await (await api(disabled.app, 'POST', '/tokens', newToken)).json()) as { id: number };
    const res = await api(disabled.app, 'POST', `/tokens/${id}/validate`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: string }).error).toMatch(/ANALYTICS_DISABLED/);
    expect(ga.requests.length).toBe(before);
  });
});
