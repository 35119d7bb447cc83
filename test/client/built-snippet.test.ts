import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { SNIPPET_PATH } from '../../scripts/snippet-size.ts';
import { beaconPaths, closePages, openPage, sentHits, setProperty, type FakePage } from './fake-page.ts';

afterEach(closePages);

/** Runs the minified build as a page would: `window` and `document.currentScript` are its only inputs. */
function runBuilt(page: FakePage): void {
  // Read per test so a stale module cache never hides a rebuild; `npm test` builds first.
  const code = readFileSync(SNIPPET_PATH, 'utf8');
  new Function('window', 'document', code)(page.win, { currentScript: page.script });
}

// The unit tests cover the source; these check that minification kept its behaviour.
describe('the built snippet (dist/analytics.js)', () => {
  it('sends on load and on a new path to /collect on its own origin', () => {
    const page = openPage();
    runBuilt(page);
    page.win.history.pushState({}, '', '/cart#x');
    page.win.history.replaceState({}, '', '/cart?y');
    expect(String(page.beacon.mock.calls[0]![0])).toBe('https://collector.example/collect');
    expect(sentHits(page)).toEqual([
      { path: '/products', title: 'Products', language: 'de-CH' },
      { path: '/cart', title: 'Products', language: 'de-CH' },
    ]);
  });

  it('stays silent with Global Privacy Control and on localhost', () => {
    const gpc = openPage();
    setProperty(gpc.happy.navigator, 'globalPrivacyControl', true);
    runBuilt(gpc);
    const local = openPage('http://localhost:3000/');
    runBuilt(local);
    expect(beaconPaths(gpc)).toEqual([]);
    expect(beaconPaths(local)).toEqual([]);
  });

  it('never throws when it has no tag to read', () => {
    const page = openPage();
    expect(() => new Function('window', 'document', readFileSync(SNIPPET_PATH, 'utf8'))(page.win, { currentScript: null })).not.toThrow();
    expect(page.beacon).not.toHaveBeenCalled();
  });
});
