import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { DIALECTS, queueEvents, type TestServices } from '../helpers/app.ts';
import { ADMIN_TOKEN, api, failEvents, getPage, login, makeAdminApp, postForm } from '../helpers/admin.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

const LIST = '/admin/analytics/analyticstokens/';
const SECRET = 'page-test-secret-Q1w2E3r4';

/** The table row of one token on the list page. */
function rowOf(html: string, id: number): string {
  const start = html.indexOf(`<tr id="token-${id}">`);
  if (start < 0) throw new Error(`token ${id} is not in the list`);
  return html.slice(start, html.indexOf('</tr>', start));
}

const tokenForm = (fields: Partial<Record<string, string>>): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(fields)) if (value !== undefined) out[key] = value;
  return out;
};

/** The ids of the stored tokens, in order. */
const tokenIds = async (services: TestServices): Promise<number[]> =>
  (await services.sql<{ id: number }>('SELECT id FROM tokens ORDER BY id')).map((row) => Number(row.id));

/** The stored tokens, as rows, for checking that nothing changed. */
const storedTokens = async (services: TestServices): Promise<string> => JSON.stringify(await services.sql('SELECT * FROM tokens ORDER BY id'));

describe('admin pages', () => {
  it('redirects /admin and /admin/ to the token list', async () => {
    const { app } = await makeAdminApp();
    for (const path of ['/admin', '/admin/', '/admin/analytics/', '/admin/analytics/analyticstokens']) {
      const res = await app.request(path);
      expect(res.status, path).toBeGreaterThanOrEqual(301);
      expect(res.status).toBeLessThan(400);
      expect(res.headers.get('location')).toMatch(/\/admin\/(analytics\/analyticstokens\/|login)/);
    }
  });

  it('lists token 1 as skipped (placeholder), the install identity and no disabled banner', async () => {
    const { app, services } = await makeAdminApp();
    const browser = await login(app);
    const html = await (await getPage(app, LIST, browser.cookie)).text();
    const row = rowOf(html, 1);
    expect(row).toContain('Project team');
    expect(row).toContain('G-XXXXXXXXXX');
    expect(row).toContain('skipped: placeholder measurement id');
    expect(row.match(/class="on">on</g)).toHaveLength(3);
    expect(html).toContain(services.identity.uuid);
    expect(html).toContain(services.config.appVersion);
    expect(html).not.toContain('disabled by ANALYTICS_DISABLED');
  });

  it('shows only its own notices: a notice named like a built-in property of an object shows nothing', async () => {
    const { app } = await makeAdminApp();
    const browser = await login(app);
    for (const base of [LIST, '/admin/analytics/failed/']) {
      for (const notice of ['__proto__', 'constructor', 'hasOwnProperty', 'valueOf', 'toString', 'nonsense']) {
        const res = await getPage(app, `${base}?notice=${notice}&n=1`, browser.cookie);
        expect(res.status, `${base} ${notice}`).toBe(200);
        const html = await res.text();
        expect(html).not.toContain('[object');
        expect(html).not.toContain('class="banner notice"');
      }
      // The notices it has still show.
      expect(await (await getPage(app, `${base}?notice=retried&n=2`, browser.cookie)).text()).toContain('2 failed events put back in the queue.');
    }
  });

  it('shows a clear banner when analytics is disabled', async () => {
    const { app } = await makeAdminApp({ config: { disabled: true } });
    const browser = await login(app);
    for (const path of [LIST, `${LIST}add/`, `${LIST}1/change/`, '/admin/analytics/failed/']) {
      const html = await (await getPage(app, path, browser.cookie)).text();
      expect(html, path).toContain('Analytics is disabled by ANALYTICS_DISABLED: nothing is queued or sent');
    }
    expect(await (await getPage(app, LIST, browser.cookie)).text()).toContain('disabled by ANALYTICS_DISABLED');
  });

  it('adds, changes (switches, secret) and deletes a token through the forms', async () => {
    const { app, services, log } = await makeAdminApp();
    const browser = await login(app);
    const pages: string[] = [];
    const page = async (path: string) => {
      const res = await getPage(app, path, browser.cookie);
      expect(res.status, path).toBe(200);
      const html = await res.text();
      pages.push(html);
      return html;
    };

    expect(await page(`${LIST}add/`)).toContain('name="measurementId"');
    const added = await postForm(
      app,
      `${LIST}add/`,
      tokenForm({ _csrf: browser.csrf, name: 'Site two', measurementId: 'g-site2two', apiSecret: SECRET, sendPageViews: 'on', sendDailyStats: 'on', ignorePaths: '^/a/\r\n\r\n  ^/b/  \n' }),
      browser.cookie,
    );
    expect(added.status).toBe(303);
    expect(added.headers.get('location')).toBe(`${LIST}?notice=added`);
    const stored = await services.store.findToken(2);
    expect(stored).toMatchObject({
      name: 'Site two',
      measurementId: 'G-SITE2TWO',
      apiSecret: SECRET,
      sendPageViews: true,
      sendTaskEvents: false,
      sendDailyStats: true,
      ignorePaths: ['^/a/', '^/b/'],
    });
    const list = await page(`${LIST}?notice=added`);
    expect(list).toContain('Token added.');
    expect(rowOf(list, 2)).toContain('sending');

    // The change form shows the stored values, and the secret only as "stored", with the field blank.
    const change = await page(`${LIST}2/change/`);
    expect(change).toContain('value="Site two"');
    expect(change).toContain('name="apiSecret" value=""');
    expect(change).toContain('Leave blank to keep it.');
    expect(change).toMatch(/name="sendPageViews" checked/);
    expect(change).not.toMatch(/name="sendTaskEvents" checked/);
    expect(change).toContain('^/a/\n^/b/</textarea>');

    // Untick page views; the blank secret keeps the stored one.
    const saved = await postForm(
      app,
      `${LIST}2/change/`,
      tokenForm({ _csrf: browser.csrf, name: 'Site two', measurementId: 'G-SITE2TWO', apiSecret: '', sendDailyStats: 'on', ignorePaths: '^/a/' }),
      browser.cookie,
    );
    expect(saved.status).toBe(303);
    expect(await services.store.findToken(2)).toMatchObject({
      apiSecret: SECRET,
      sendPageViews: false,
      sendTaskEvents: false,
      sendDailyStats: true,
      ignorePaths: ['^/a/'],
    });
    expect(services.tokens.recipients('pageViews')).toEqual([]);
    const after = await page(`${LIST}?notice=saved`);
    expect(after).toContain('Changes saved.');
    expect(rowOf(after, 2)).toContain('<td data-switch="sendPageViews"><span class="off">off</span></td>');
    expect(rowOf(after, 2)).toContain('<td data-switch="sendDailyStats"><span class="on">on</span></td>');

    // A new secret replaces it; "remove" clears it, and the list says the token is skipped.
    await postForm(app, `${LIST}2/change/`, { _csrf: browser.csrf, name: 'Site two', measurementId: 'G-SITE2TWO', apiSecret: 'replacement-secret-77' }, browser.cookie);
    expect((await services.store.findToken(2))?.apiSecret).toBe('replacement-secret-77');
    await postForm(app, `${LIST}2/change/`, { _csrf: browser.csrf, name: 'Site two', measurementId: 'G-SITE2TWO', clearApiSecret: 'on' }, browser.cookie);
    expect((await services.store.findToken(2))?.apiSecret).toBe('');
    expect(rowOf(await page(LIST), 2)).toContain('skipped: no API secret');
    await postForm(app, `${LIST}2/change/`, { _csrf: browser.csrf, name: 'Site two', measurementId: 'G-SITE2TWO', apiSecret: SECRET }, browser.cookie);

    // Delete: a confirmation page first, then the post.
    await queueEvents(services, [{ tokenId: 2, name: 'task_event', params: { task: 't' } }]);
    const confirm = await page(`${LIST}2/delete/`);
    expect(confirm).toContain('Delete the token <strong>Site two</strong>');
    expect(confirm).toContain('Its 1 waiting and 0 failed events are deleted with it.');
    expect(await tokenIds(services)).toHaveLength(2);
    const deleted = await postForm(app, `${LIST}2/delete/`, { _csrf: browser.csrf }, browser.cookie);
    expect(deleted.status).toBe(303);
    expect(await tokenIds(services)).toEqual([1]);
    expect(await services.outbox.depth()).toBe(0);
    expect(await page(`${LIST}?notice=deleted`)).not.toContain('token-2');
    expect((await getPage(app, `${LIST}2/change/`, browser.cookie)).status).toBe(404);
    expect((await postForm(app, `${LIST}2/delete/`, { _csrf: browser.csrf }, browser.cookie)).status).toBe(404);

    for (const html of pages) {
      expect(html).not.toContain(SECRET);
      expect(html).not.toContain('replacement-secret-77');
      expect(html).not.toContain(ADMIN_TOKEN);
    }
    for (const line of log.lines) {
      expect(line).not.toContain(SECRET);
      expect(line).not.toContain(ADMIN_TOKEN);
    }
  });

  it('shows an invalid ignore path back with its error and saves nothing', async () => {
    const { app, services } = await makeAdminApp();
    const browser = await login(app);
    const before = await storedTokens(services);
    const res = await postForm(
      app,
      `${LIST}1/change/`,
      { _csrf: browser.csrf, name: 'Renamed', measurementId: 'G-XXXXXXXXXX', apiSecret: 'typed-secret-999', sendTaskEvents: 'on', ignorePaths: '^/admin/\n^/(unclosed\n' },
      browser.cookie,
    );
    expect(res.status).toBe(400);
    const html = await res.text();
    expect(html).toContain('Nothing was saved.');
    expect(html).toContain('&quot;^/(unclosed&quot; is not a valid regular expression: missing closing ): `^/(unclosed`');
    // What was typed comes back (so it can be fixed), except the secret.
    expect(html).toContain('value="Renamed"');
    expect(html).toContain('^/admin/\n^/(unclosed\n</textarea>');
    expect(html).not.toMatch(/name="sendPageViews" checked/);
    expect(html).not.toContain('typed-secret-999');
    expect(await storedTokens(services)).toBe(before);

    const bad = await postForm(app, `${LIST}add/`, { _csrf: browser.csrf, name: '', measurementId: 'UA-1', ignorePaths: '' }, browser.cookie);
    expect(bad.status).toBe(400);
    const badHtml = await bad.text();
    expect(badHtml).toContain('a name is required');
    expect(badHtml).toContain('the measurement id must be G- followed by letters and digits');
    expect(await tokenIds(services)).toHaveLength(1);
  });

  it('shows XSS attempts in names, ignore paths, errors and GA answers as inert text', async () => {
    const payload = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'';
    const fakeFetch: typeof fetch = async () =>
      new Response(JSON.stringify({ validationMessages: [{ fieldPath: '<i>f</i>', description: payload, validationCode: '<b>X</b>' }] }));
    const { app, services } = await makeAdminApp({ fetch: fakeFetch });
    const browser = await login(app);
    const created = await postForm(
      app,
      `${LIST}add/`,
      { _csrf: browser.csrf, name: payload, measurementId: 'G-XSS1', apiSecret: 'xss-secret-abc', sendTaskEvents: 'on', ignorePaths: '<img src=x onerror=alert(3)>\n</textarea><script>alert(4)</script>' },
      browser.cookie,
    );
    expect(created.status).toBe(303);
    const id = (await tokenIds(services)).at(-1) ?? 0;
    await services.sql('UPDATE tokens SET last_error = ?, last_error_at = ? WHERE id = ?', [payload, services.clock(), id]);
    await queueEvents(services, [{ tokenId: id, name: 'task_event', params: {} }]);
    await failEvents(services, id, payload);

    const htmls = [
      await (await getPage(app, LIST, browser.cookie)).text(),
      await (await getPage(app, `${LIST}${id}/change/`, browser.cookie)).text(),
      await (await getPage(app, `${LIST}${id}/delete/`, browser.cookie)).text(),
      await (await getPage(app, '/admin/analytics/failed/', browser.cookie)).text(),
      await (await postForm(app, `${LIST}${id}/validate/`, { _csrf: browser.csrf }, browser.cookie)).text(),
      await (
        await postForm(app, `${LIST}${id}/change/`, { _csrf: browser.csrf, name: payload, measurementId: 'G-XSS1', ignorePaths: '<b>(' }, browser.cookie)
      ).text(),
    ];
    for (const html of htmls) {
      expect(html).not.toMatch(/<script/i);
      expect(html).not.toMatch(/<img/i);
      expect(html).not.toMatch(/<[bi]>/);
      // Only the form's own textarea ends: the typed "</textarea>" stays inside it as text.
      expect(html.split('</textarea>').length).toBeLessThanOrEqual(2);
      expect(html).toMatch(/&lt;script&gt;alert\((1|3|4)\)|&lt;img src=x onerror=alert\(3\)&gt;|&lt;b&gt;/);
    }
    expect(htmls[0]).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(htmls[1]).toContain('&lt;img src=x onerror=alert(3)&gt;\n&lt;/textarea&gt;&lt;script&gt;alert(4)&lt;/script&gt;</textarea>');
    expect(htmls[4]).toContain('<code>&lt;b&gt;X&lt;/b&gt;</code>');
  });

  it.each(DIALECTS)('shows delivery status per token: delivered in 24 h, waiting, failed, last error (%s)', async (database) => {
    const { app, services } = await makeAdminApp({ database });
    onTestFinished(() => services.store.close());
    const browser = await login(app);
    const { id } = (await (await api(app, 'POST', '/tokens', { name: 'Busy', measurementId: 'G-BUSY1', apiSecret: SECRET })).json()) as { id: number };
    const now = services.clock();
    const hour = now - (now % 3_600_000);
    for (const [at, delivered] of [
      [hour, 5],
      [hour - 5 * 3_600_000, 7],
      [hour - 30 * 3_600_000, 1000],
    ] as const) {
      await services.sql('INSERT INTO delivery_stats (token_id, hour, delivered) VALUES (?, ?, ?)', [id, at, delivered]);
    }
    await queueEvents(
      services,
      Array.from({ length: 4 }, () => ({ tokenId: id, name: 'task_event', params: {}, occurredAt: now })),
    );
    await failEvents(services, id, `GA answered 403: secret ${SECRET} refused`, 1);
    const row = rowOf(await (await getPage(app, LIST, browser.cookie)).text(), id);
    const cells = [...row.matchAll(/<td class="num">(\d+)<\/td>/g)].map((m) => Number(m[1]));
    expect(cells).toEqual([12, 3, 1]);
    expect(row).toContain('GA answered 403: secret ••••');
    expect(row).not.toContain(SECRET);
    expect(row).toContain('Retry failed');

    const failedPage = await (await getPage(app, '/admin/analytics/failed/', browser.cookie)).text();
    expect(failedPage).toContain('Retry all failed of Busy');
    expect(failedPage).not.toContain(SECRET);
    const retried = await postForm(app, `/admin/analytics/analyticstokens/${id}/retry/`, { _csrf: browser.csrf, back: 'failed' }, browser.cookie);
    expect(retried.status).toBe(303);
    expect(retried.headers.get('location')).toBe('/admin/analytics/failed/?notice=retried&n=1');
    expect(await services.outbox.depth()).toBe(4);
    const afterRetry = await (await getPage(app, '/admin/analytics/failed/?notice=retried&n=1', browser.cookie)).text();
    expect(afterRetry).toContain('1 failed event put back in the queue.');
    expect(afterRetry).toContain('No failed deliveries.');
  });
});

describe('admin pages: validate', () => {
  let ga: FakeGa;
  beforeAll(async () => {
    ga = await startFakeGa();
  });
  afterAll(async () => {
    await ga.close();
  });

  it('sends the samples to GA’s debug endpoint and shows the answer per feature', async () => {
    const { app } = await makeAdminApp({ config: { gaUrl: ga.url } });
    const browser = await login(app);
    const { id } = (await (await api(app, 'POST', '/tokens', { name: 'V', measurementId: 'G-VALID1', apiSecret: SECRET, sendDailyStats: false })).json()) as { id: number };
    const ask = await getPage(app, `${LIST}${id}/validate/`, browser.cookie);
    expect(await ask.text()).toContain('<button type="submit">Validate</button>');
    const before = ga.requests.length;
    const res = await postForm(app, `${LIST}${id}/validate/`, { _csrf: browser.csrf }, browser.cookie);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(ga.requests.length - before).toBe(2);
    expect(html).toContain('<tr data-feature="pageViews"><td>Page views</td><td><span class="on">valid: GA found no problems</span>');
    expect(html).toContain('<tr data-feature="taskEvents"><td>Task events</td><td><span class="on">valid: GA found no problems</span>');
    expect(html).not.toContain('data-feature="dailyStats"');
    expect(html).not.toContain(SECRET);

    const skipped = await postForm(app, `${LIST}1/validate/`, { _csrf: browser.csrf }, browser.cookie);
    expect(skipped.status).toBe(409);
    expect(await skipped.text()).toContain('Not validated: the relay skips this token (placeholder measurement id)');
    expect(ga.requests.length - before).toBe(2);
  });
});
