import { chromium, type Browser } from 'playwright-core';

/** A User-Agent of an ordinary desktop Chrome, for tests of the real flow. */
export const DESKTOP_CHROME_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * Debian's Chromium, driven by playwright-core (no browser download).
 * @param options.automation false hides `navigator.webdriver`, as in a person's browser
 */
export function launchChromium(options: { automation?: boolean } = {}): Promise<Browser> {
  const args = options.automation === false ? [...FLAGS, '--disable-blink-features=AutomationControlled'] : FLAGS;
  return chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args });
}
