import { mkdirSync, statSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';
import { DESKTOP_CHROME_UA, launchChromium } from '../helpers/browser.ts';
import { addTestToken } from '../helpers/app.ts';
import { ADMIN_TOKEN, makeAdminApp } from '../helpers/admin.ts';
import type { TestServices } from '../helpers/app.ts';

const OUTPUT = fileURLToPath(new URL('../../test-output/', import.meta.url));
const HOUR_MS = 3_600_000;

let ga: FakeGa;
let services: TestServices;
let server: ServerType;
let url: string;
let browser: Browser;

/** A week of hourly counts: a daily rhythm of deliveries, and an afternoon where GA refused some. */
async function storeWeekOfCounts(tokenId: number, scale: number, failing: boolean): Promise<void> {
  const now = Date.now();
  const current = now - (now % HOUR_MS);
  for (let h = 0; h < 7 * 24; h += 1) {
    const hour = current - h * HOUR_MS;
    const hourOfDay = new Date(hour).getUTCHours();
    const delivered = Math.round(scale * (1 + Math.sin(((hourOfDay - 6) / 24) * 2 * Math.PI)) * (h % 5 === 0 ? 0.6 : 1));
    const failed = failing && h >= 30 && h < 36 ? 3 + (h % 4) : 0;
    if (delivered + failed === 0) continue;
    await services.sql('INSERT INTO delivery_stats (token_id, hour, delivered, failed) VALUES (?, ?, ?, ?)', [tokenId, hour, delivered, failed]);
  }
}

beforeAll(async () => {
  ga = await startFakeGa();
  const made = await makeAdminApp({ config: { gaUrl: ga.url } });
  services = made.services;
  const first = await addTestToken(services, { name: 'Our own property' });
  const second = await addTestToken(services, { name: 'Partner property' });
  // The week's counts first: the delivery below adds to the current hour's.
  await storeWeekOfCounts(first.id, 40, true);
  await storeWeekOfCounts(second.id, 8, false);
  // Something really sent to the second token, for its "Sent" page.
  const hit = await made.app.request('/collect', {
    method: 'POST',
    headers: { 'user-agent': DESKTOP_CHROME_UA },
    body: JSON.stringify({ path: '/forum/topics/', title: 'Topics', language: 'en-GB' }),
  });
  expect(hit.status).toBe(204);
  await services.dailyStats.runNow();
  await services.relay.drain();
  await new Promise<void>((resolve) => {
    server = serve({ fetch: made.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve());
  });
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  if (server) await new Promise((resolve) => server.close(resolve));
  await services?.relay.stop();
  await services?.store.close();
  await ga?.close();
});

describe('the delivery charts in a real browser', () => {
  it('render without script, under the unchanged CSP, readable as text', async () => {
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    const page = await context.newPage();
    const consoleMessages: string[] = [];
    page.on('console', (message) => consoleMessages.push(`${message.type()}: ${message.text()}`));

    await page.goto(`${url}/admin/login`);
    await page.fill('#token', ADMIN_TOKEN);
    const [listResponse] = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/admin/analytics/analyticstokens/')), page.click('button[type=submit]')]);
    await page.waitForLoadState('load');
    const listCsp = await listResponse.headerValue('content-security-policy');

    // The same CSP as every other admin page: no script, only the one style sheet.
    const other = await page.request.get(`${url}/admin/analytics/failed/`);
    expect(listCsp).toBe(other.headers()['content-security-policy']);
    expect(listCsp).toMatch(/^default-src 'none'; style-src 'sha256-[A-Za-z0-9+/=]+'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'$/);
    expect(await page.locator('script').count()).toBe(0);

    const charts = page.locator('figure.chart');
    expect(await charts.count()).toBe(3); // token 1 too, with nothing delivered
    const own = page.locator('figure.chart', { hasText: 'Our own property' });
    const svg = own.locator('svg[role=img]');
    const box = await svg.boundingBox();
    expect(box?.width).toBeGreaterThan(400); // the style sheet applied: the SVG fills its figure
    expect(await svg.getAttribute('aria-label')).toMatch(/^Deliveries to Our own property in the last 7 days: [\d,]+ delivered, \d+ failed\.$/);
    expect(await own.locator('rect.bar-failed').count()).toBe(6);
    expect(await own.locator('rect.bar-failed').first().getAttribute('fill')).toMatch(/^url\(#hatch-\d+\)$/);
    // The per-day numbers are in the page for screen readers, but take no room on it.
    const hidden = own.locator('.visually-hidden');
    expect(await hidden.locator('table tbody tr').count()).toBeGreaterThanOrEqual(7);
    const tableBox = await hidden.boundingBox();
    expect((tableBox?.width ?? 0) <= 1 && (tableBox?.height ?? 0) <= 1).toBe(true);
    // The browser's accessibility tree names the picture by its totals.
    expect(await page.getByRole('img', { name: /^Deliveries to Our own property in the last 7 days/ }).count()).toBe(1);
    expect(await page.getByRole('table', { name: /^Deliveries to Our own property per day/ }).count()).toBe(1);

    mkdirSync(OUTPUT, { recursive: true });
    const screenshot = join(OUTPUT, 'admin-chart.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    expect(statSync(screenshot).size).toBeGreaterThan(10_000);

    // The about and sent pages render under the same CSP too, their links followed from the list.
    await page.goto(`${url}/admin/analytics/analyticstokens/`);
    for (const [link, file] of [
      ['What is sent, and how to opt out', 'admin-about.png'],
      ['#token-3 >> text=Sent', 'admin-sent.png'],
    ] as const) {
      await page.goto(`${url}/admin/analytics/analyticstokens/`);
      const [res] = await Promise.all([page.waitForResponse((r) => r.request().resourceType() === 'document'), page.click(link.startsWith('#') ? link : `text=${link}`)]);
      expect(res.status()).toBe(200);
      expect(await res.headerValue('content-security-policy')).toBe(listCsp);
      await page.screenshot({ path: join(OUTPUT, file), fullPage: true });
    }
    expect(await page.locator('section.sent-request').count()).toBe(2); // the page view, and the daily stats
    expect(await page.textContent('main')).toContain('page_location');
    expect(consoleMessages.filter((m) => /Content Security Policy|Refused to/i.test(m))).toEqual([]);
    expect(consoleMessages.filter((m) => m.startsWith('error'))).toEqual([]);
    await context.close();
  });
});
