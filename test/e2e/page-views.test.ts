import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { DESKTOP_CHROME_UA, launchChromium } from '../helpers/browser.ts';
import { METRICS_TOKEN, openTestStore } from '../helpers/app.ts';
import { startCollector, type CollectorProcess } from '../../harness/collector-process.ts';
import { startFakeGa, type FakeGa } from '../../harness/fake-ga.ts';
import { startStaticSite } from '../helpers/static-site.ts';

const dir = mkdtempSync(join(tmpdir(), 'analytics-e2e-'));
let ga: FakeGa;
let collector: CollectorProcess;
let site: { url: string; close(): Promise<void> };
let uuid: string;

/** Page views GA received (the install's daily phone-in may reach the same token too). */
const pageViews = () => ga.delivered().filter((event) => event.name === 'page_view');

beforeAll(async () => {
  const dbPath = join(dir, 'analytics.db');
  // The install and the site's token are made before the collector starts, and the file closed again.
  const { store } = await openTestStore({ sqliteFile: dbPath });
  uuid = (await store.install(TEAM_TOKEN, Date.now())).uuid;
  await store.createToken(
    { name: 'Site property', measurementId: 'G-E2E', apiSecret: 'e2e-secret', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] },
    Date.now(),
  );
  await store.close();

  ga = await startFakeGa();
  collector = await startCollector({ ANALYTICS_DB: dbPath, ANALYTICS_GA_URL: ga.url, ANALYTICS_APP_VERSION: '3.1.4', ANALYTICS_METRICS_TOKEN: METRICS_TOKEN });
  // The page lives on another port (another origin) than the collector, as on a real site.
  site = await startStaticSite(
    `<!doctype html><html><head><title>Home</title>` +
      `<script defer src="${collector.url}/analytics.js" data-allow-localhost></script></head><body>Hello</body></html>`,
  );
});

afterAll(async () => {
  await site?.close();
  await collector?.stop();
  await ga?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${collector.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  const match = new RegExp(`^${name.replace(/[{}"]/g, '\\$&')} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

describe('page views from a real browser', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium({ automation: false });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('reach GA on load, pushState, replaceState and back, with title, path, language and device', async () => {
    const context = await browser.newContext({ userAgent: DESKTOP_CHROME_UA, locale: 'de-DE' });
    const page = await context.newPage();
    await page.goto(`${site.url}/`);
    await ga.waitFor(() => pageViews().length === 1);
    // Each beacon goes out on its own and the collector stamps a hit when it arrives: two sent a few ms apart may
    // arrive (and so be stamped, and reach GA) in either order. Each step waits until its hit has arrived.
    const received = () => metric('analytics_hits_received_total');
    const before = await received();

    await page.evaluate(() => {
      document.title = 'Reports';
      history.pushState({}, '', '/reports?tab=2');
    });
    await expect.poll(received).toBe(before + 1);
    await page.evaluate(() => history.pushState({}, '', '/reports?tab=3')); // same path: not a new page view
    await page.evaluate(() => {
      document.title = 'Settings';
      history.replaceState({}, '', '/settings');
    });
    await expect.poll(received).toBe(before + 2);
    await page.evaluate(() => {
      document.title = 'Home again';
      history.back();
    });
    await expect.poll(received).toBe(before + 3);
    await ga.waitFor(() => pageViews().length >= 4, 15_000);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // nothing more should arrive

    const events = pageViews();
    expect(events.map((e) => [new URL(String(e.params.page_location)).pathname, e.params.page_title])).toEqual([
      ['/', 'Home'],
      ['/reports', 'Reports'],
      ['/settings', 'Settings'],
      ['/reports', 'Home again'],
    ]);
    for (const event of events) {
      expect(event).toMatchObject({
        name: 'page_view',
        measurementId: 'G-E2E',
        clientId: uuid,
        appVersion: '3.1.4',
        device: { category: 'desktop', language: 'de-DE', operating_system: 'Windows', browser: 'Chrome', browser_version: '131.0.0.0' },
        params: { language: 'de-DE', engagement_time_msec: 1, session_id: expect.any(Number) },
      });
      expect(String(event.params.page_location)).toMatch(/^https:\/\/app\.invalid\//);
    }
    await context.close();
  });

  // Chromium has no switch for these in headless mode, so the browser setting is stood in for before the page runs.
  it.each([
    ['the localStorage flag', () => localStorage.setItem('analytics:optout', '1')],
    ['Do-Not-Track', () => Object.defineProperty(Navigator.prototype, 'doNotTrack', { get: () => '1' })],
    ['Global Privacy Control', () => Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true })],
  ])('sends nothing from a visitor who opted out with %s', async (_, optOut) => {
    const before = await metric('analytics_hits_received_total');
    const context = await browser.newContext({ userAgent: DESKTOP_CHROME_UA });
    await context.addInitScript(optOut);
    const page = await context.newPage();
    await page.goto(`${site.url}/private`);
    await page.evaluate(() => history.pushState({}, '', '/private/2'));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await metric('analytics_hits_received_total')).toBe(before);
    await context.close();
  });

  it('filters a headless browser by its User-Agent at the collector', async () => {
    const context = await browser.newContext(); // Chromium's own headless User-Agent
    const page = await context.newPage();
    expect(await page.evaluate(() => navigator.userAgent)).toContain('HeadlessChrome');
    const ignoredBefore = await metric('analytics_hits_ignored_total{reason="bot"}');
    await page.goto(`${site.url}/headless`);
    await expect.poll(() => metric('analytics_hits_ignored_total{reason="bot"}'), { timeout: 5000 }).toBe(ignoredBefore + 1);
    await context.close();
  });
});

describe('a browser under automation', () => {
  it('sends nothing while navigator.webdriver is true', async () => {
    const browser = await launchChromium();
    try {
      const context = await browser.newContext({ userAgent: DESKTOP_CHROME_UA });
      const page = await context.newPage();
      const before = await metric('analytics_hits_received_total');
      await page.goto(`${site.url}/automated`);
      expect(await page.evaluate(() => navigator.webdriver)).toBe(true);
      await new Promise((resolve) => setTimeout(resolve, 1000));
      expect(await metric('analytics_hits_received_total')).toBe(before);
    } finally {
      await browser.close();
    }
  });
});
