import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DESKTOP_CHROME_UA, launchChromium } from '../helpers/browser.ts';
import { startCollector, type CollectorProcess } from '../../harness/collector-process.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';

const ADMIN_TOKEN = 'e2e-admin-token-0123456789abcdef';
const TEAM = { measurementId: 'G-TEAM2E2E', apiSecret: 'team-e2e-secret-abc123' };
const SECOND = { name: 'Second property', measurementId: 'G-SECOND2E2E', apiSecret: 'second-e2e-secret-xyz789' };
const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));

const dir = mkdtempSync(join(tmpdir(), 'analytics-admin-e2e-'));
let ga: FakeGa;
let collector: CollectorProcess;
let browser: Browser;

async function adminApi(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${collector.url}/api/admin${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

/** A page view as the snippet sends it: a text/plain JSON body, from an ordinary browser. */
async function sendPageView(path: string): Promise<void> {
  const res = await fetch(`${collector.url}/collect`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'user-agent': DESKTOP_CHROME_UA },
    body: JSON.stringify({ path, title: 'T', language: 'en' }),
  });
  expect(res.status).toBe(204);
  expect(res.headers.get('x-analytics-ignored')).toBeNull();
}

const pageViewsAt = (measurementId: string, path: string) =>
  ga
    .delivered()
    .filter((e) => e.measurementId === measurementId && e.name === 'page_view' && String(e.params.page_location).endsWith(path));

beforeAll(async () => {
  ga = await startFakeGa();
  collector = await startCollector({
    ANALYTICS_DB: join(dir, 'analytics.db'),
    ANALYTICS_ADMIN_TOKEN: ADMIN_TOKEN,
    ANALYTICS_GA_URL: ga.url,
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await collector?.stop();
  await ga?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('admin in a real browser', () => {
  it('turns off page views for token 1 from its change page, and page views stop reaching it', async () => {
    // Token 1 gets a real-looking id and secret (so the relay stops skipping it); a second token joins.
    expect((await adminApi('PATCH', '/tokens/1', TEAM)).status).toBe(200);
    expect((await adminApi('POST', '/tokens', SECOND)).status).toBe(201);

    // Before: a page view reaches both tokens.
    await sendPageView('/before');
    await ga.waitFor(() => pageViewsAt(TEAM.measurementId, '/before').length === 1 && pageViewsAt(SECOND.measurementId, '/before').length === 1);

    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') consoleErrors.push(message.text());
    });

    // Log in through the form.
    await page.goto(`${collector.url}/admin/`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    await page.fill('#token', ADMIN_TOKEN);
    await Promise.all([page.waitForURL('**/admin/analytics/analyticstokens/'), page.click('button[type=submit] >> text=Log in')]);
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'analytics_admin_session');
    expect(session).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/admin' });
    expect(await page.textContent('#token-1')).toContain('sending');

    // Untick page views on token 1 and save.
    await page.goto(`${collector.url}/admin/analytics/analyticstokens/1/change/`);
    expect(await page.isChecked('#sendPageViews')).toBe(true);
    expect(await page.inputValue('#apiSecret')).toBe('');
    await page.uncheck('#sendPageViews');
    await Promise.all([page.waitForURL('**/admin/analytics/analyticstokens/?notice=saved*'), page.click('button[type=submit] >> text=Save')]);

    // The list says so.
    expect(await page.textContent('.banner.notice')).toContain('Changes saved.');
    expect((await page.textContent('#token-1 [data-switch=sendPageViews]'))?.trim()).toBe('off');
    expect((await page.textContent('#token-1 [data-switch=sendTaskEvents]'))?.trim()).toBe('on');
    expect((await page.textContent('#token-2 [data-switch=sendPageViews]'))?.trim()).toBe('on');
    // The page's style sheet was allowed by its CSP (the header is dark, not the browser's default).
    const headerBackground = await page.$eval('header', (el) => getComputedStyle(el).backgroundColor);
    expect(headerBackground).toBe('rgb(35, 49, 63)');
    const html = await page.content();
    expect(html).not.toContain(TEAM.apiSecret);
    expect(html).not.toContain(SECOND.apiSecret);
    expect(html).not.toContain(ADMIN_TOKEN);

    mkdirSync(OUTPUT, { recursive: true });
    const screenshot = join(OUTPUT, 'admin-list.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);

    // After: a page view reaches the second token only.
    await sendPageView('/x');
    await ga.waitFor(() => pageViewsAt(SECOND.measurementId, '/x').length === 1);
    // Both tokens are delivered in the same round; give token 1 time to show up anyway, were it queued.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(pageViewsAt(TEAM.measurementId, '/x')).toEqual([]);
    expect(pageViewsAt(SECOND.measurementId, '/x')).toHaveLength(1);

    // The API agrees with what the browser saved.
    const one = (await (await adminApi('GET', '/tokens/1')).json()) as { sendPageViews: boolean; apiSecret: string };
    expect(one.sendPageViews).toBe(false);
    expect(one.apiSecret).not.toContain(TEAM.apiSecret);

    // Logging out ends the session in the browser too.
    await Promise.all([page.waitForURL('**/admin/login'), page.click('header button >> text=Log out')]);
    await page.goto(`${collector.url}/admin/analytics/analyticstokens/`);
    expect(new URL(page.url()).pathname).toBe('/admin/login');
    expect(consoleErrors).toEqual([]);
    await context.close();
  });
});
