import { afterEach, describe, expect, it, vi } from 'vitest';
import { start } from '../../client/track.ts';
import { MAX_TITLE_LENGTH, OPT_OUT_STORAGE_KEY } from '../../shared/wire.ts';
import { beaconPaths, closePages, openPage, sentHits, setProperty, type FakePage } from './fake-page.ts';

afterEach(async () => {
  vi.restoreAllMocks();
  await closePages();
});

function run(page: FakePage): FakePage {
  start(page.win, page.script);
  return page;
}

describe('what the snippet sends', () => {
  it('sends path, title and language once on load, by beacon, to /collect on its own origin', () => {
    const page = run(openPage());
    expect(page.beacon).toHaveBeenCalledTimes(1);
    expect(page.fetch).not.toHaveBeenCalled();
    const [endpoint, body] = page.beacon.mock.calls[0]!;
    expect(String(endpoint)).toBe('https://collector.example/collect');
    // The path only: query and fragment stay in the browser.
    expect(JSON.parse(String(body))).toEqual({ path: '/products', title: 'Products', language: 'de-CH' });
  });

  it('sends a plain string, which goes out as text/plain (a CORS-safelisted type: no preflight)', () => {
    const page = run(openPage());
    const body = page.beacon.mock.calls[0]![1];
    expect(typeof body).toBe('string');
    const request = new Request('https://collector.example/collect', { method: 'POST', body: body as string });
    expect(request.headers.get('content-type')).toBe('text/plain;charset=UTF-8');
  });

  it('resolves a relative src against the page, so the default endpoint is the serving origin', () => {
    const page = run(openPage('https://app.example/home', { src: '/static/analytics.js' }));
    expect(String(page.beacon.mock.calls[0]![0])).toBe('https://app.example/collect');
  });

  it.each([
    ['https://collector.example/api/hit', 'https://collector.example/api/hit'],
    ['/stats/collect', '/stats/collect'],
  ])('sends to data-endpoint %s when given', (endpoint, expected) => {
    const page = run(openPage(undefined, { src: 'https://cdn.example/analytics.js', 'data-endpoint': endpoint }));
    expect(String(page.beacon.mock.calls[0]![0])).toBe(expected);
  });

  it('works from an inline tag when data-endpoint is given', () => {
    const page = run(openPage(undefined, { 'data-endpoint': 'https://collector.example/collect' }));
    expect(page.beacon).toHaveBeenCalledTimes(1);
  });

  it(`cuts the title to ${MAX_TITLE_LENGTH} characters`, () => {
    const page = openPage();
    page.happy.document.title = 'x'.repeat(MAX_TITLE_LENGTH + 50);
    run(page);
    expect(sentHits(page)[0]!.title).toBe('x'.repeat(MAX_TITLE_LENGTH));
  });

  it('falls back to a keepalive fetch with the same body when sendBeacon is missing', () => {
    const page = openPage();
    setProperty(page.happy.navigator, 'sendBeacon', undefined);
    run(page);
    expect(page.fetch).toHaveBeenCalledTimes(1);
    const [endpoint, init] = page.fetch.mock.calls[0]!;
    expect(String(endpoint)).toBe('https://collector.example/collect');
    expect(init).toEqual({ method: 'POST', body: expect.any(String), keepalive: true });
    // No headers: a string body is text/plain, so the request stays simple.
    expect(init?.headers).toBeUndefined();
    expect(sentHits(page)).toEqual([{ path: '/products', title: 'Products', language: 'de-CH' }]);
  });

  it('falls back to a keepalive fetch when sendBeacon refuses to queue (returns false)', () => {
    const page = openPage();
    page.beacon.mockReturnValue(false);
    run(page);
    expect(page.beacon).toHaveBeenCalledTimes(1);
    expect(page.fetch).toHaveBeenCalledTimes(1);
    expect(page.fetch.mock.calls[0]![1]).toMatchObject({ method: 'POST', keepalive: true });
    expect(page.fetch.mock.calls[0]![1]?.body).toBe(page.beacon.mock.calls[0]![1]);
  });

  it('swallows a failed fallback fetch instead of leaving an unhandled rejection', async () => {
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      const page = openPage();
      setProperty(page.happy.navigator, 'sendBeacon', undefined);
      // A plain function, not a vi.fn: spies observe returned promises and would handle the rejection.
      let calls = 0;
      setProperty(page.happy, 'fetch', () => {
        calls++;
        return Promise.reject(new TypeError('Failed to fetch'));
      });
      run(page);
      expect(calls).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });
});

describe('when the snippet sends again', () => {
  it('sends on pushState and replaceState to a new path, with the title at that moment', () => {
    const page = run(openPage());
    page.happy.document.title = 'Cart';
    page.win.history.pushState({}, '', '/cart');
    page.happy.document.title = 'Checkout';
    page.win.history.replaceState({}, '', '/checkout?step=1');
    expect(sentHits(page)).toEqual([
      { path: '/products', title: 'Products', language: 'de-CH' },
      { path: '/cart', title: 'Cart', language: 'de-CH' },
      { path: '/checkout', title: 'Checkout', language: 'de-CH' },
    ]);
  });

  it('does not send when only the query or hash changed, or the same path is re-stated', () => {
    const page = run(openPage());
    page.win.history.pushState({}, '', '/products?sort=name');
    page.win.history.pushState({}, '', '#reviews');
    page.win.history.replaceState({ scroll: 120 }, '');
    page.win.history.replaceState({}, '', '/products');
    expect(beaconPaths(page)).toEqual(['/products']);
  });

  it('sends on popstate to another path, not on popstate within the same path', () => {
    const page = run(openPage());
    page.win.history.pushState({}, '', '/cart');
    page.goBackTo('https://shop.example/products');
    page.goBackTo('https://shop.example/products#top');
    expect(beaconPaths(page)).toEqual(['/products', '/cart', '/products']);
  });

  it('keeps what pushState and replaceState do: arguments, this, return value', () => {
    const page = openPage();
    const original = vi.fn(function (this: History, ..._args: unknown[]) {
      return this === page.win.history ? 'same history' : 'other';
    });
    setProperty(page.win.history, 'pushState', original);
    run(page);
    const result: unknown = page.win.history.pushState({ id: 1 }, '', '/cart');
    expect(result).toBe('same history');
    expect(original).toHaveBeenCalledWith({ id: 1 }, '', '/cart');
  });

  it('still changes the URL and state through the wrapped methods', () => {
    const page = run(openPage());
    page.win.history.pushState({ id: 7 }, '', '/cart');
    expect(page.win.location.pathname).toBe('/cart');
    expect(page.win.history.state).toEqual({ id: 7 });
  });

  it("lets the page's own pushState errors through unchanged, and sends nothing for them", () => {
    const page = run(openPage());
    expect(() => page.win.history.pushState({}, '', 'https://elsewhere.example/x')).toThrow(/cannot be created/);
    expect(beaconPaths(page)).toEqual(['/products']);
  });
});

describe('when the snippet stays silent', () => {
  it.each([
    'http://localhost/',
    'http://localhost:5173/app',
    'http://127.0.0.1:3000/',
    'http://127.1.2.3/',
    'http://[::1]:8080/',
    'file:///home/me/site/index.html',
  ])('sends nothing on %s', (url) => {
    const page = run(openPage(url, { src: 'https://collector.example/analytics.js' }));
    page.win.history.pushState({}, '', '#x');
    expect(page.beacon).not.toHaveBeenCalled();
    expect(page.fetch).not.toHaveBeenCalled();
  });

  it.each(['http://localhost:5173/app', 'http://127.0.0.1:3000/', 'http://[::1]:8080/', 'file:///home/me/index.html'])(
    'sends on %s when the tag has data-allow-localhost',
    (url) => {
      const page = run(
        openPage(url, { src: 'https://collector.example/analytics.js', 'data-allow-localhost': '' }),
      );
      expect(page.beacon).toHaveBeenCalledTimes(1);
    },
  );

  it.each(['http://localhost.example.com/', 'http://10.0.0.127/', 'http://intranet/'])(
    'still sends on the non-local host %s',
    (url) => {
      const page = run(openPage(url, { src: 'https://collector.example/analytics.js' }));
      expect(page.beacon).toHaveBeenCalledTimes(1);
    },
  );

  it.each([
    ['navigator.webdriver', (page: FakePage) => setProperty(page.happy.navigator, 'webdriver', true)],
    ['navigator.doNotTrack "1"', (page: FakePage) => setProperty(page.happy.navigator, 'doNotTrack', '1')],
    ['window.doNotTrack "1"', (page: FakePage) => setProperty(page.happy, 'doNotTrack', '1')],
    ['navigator.globalPrivacyControl', (page: FakePage) => setProperty(page.happy.navigator, 'globalPrivacyControl', true)],
    ['the localStorage opt-out flag', (page: FakePage) => page.win.localStorage.setItem(OPT_OUT_STORAGE_KEY, '1')],
  ])('sends nothing, even on navigation, with %s', (_name, signal) => {
    const page = openPage();
    signal(page);
    run(page);
    page.win.history.pushState({}, '', '/cart');
    page.goBackTo('https://shop.example/products');
    expect(page.beacon).not.toHaveBeenCalled();
    expect(page.fetch).not.toHaveBeenCalled();
  });

  it('sends when those signals are present but not set', () => {
    const page = openPage();
    setProperty(page.happy.navigator, 'doNotTrack', '0');
    setProperty(page.happy, 'doNotTrack', 'unspecified');
    setProperty(page.happy.navigator, 'globalPrivacyControl', false);
    page.win.localStorage.setItem(OPT_OUT_STORAGE_KEY, '0');
    run(page);
    expect(page.beacon).toHaveBeenCalledTimes(1);
  });

  it('honours the opt-out flag from the next page view on, without a reload', () => {
    const page = run(openPage());
    page.win.localStorage.setItem(OPT_OUT_STORAGE_KEY, '1');
    page.win.history.pushState({}, '', '/cart');
    expect(beaconPaths(page)).toEqual(['/products']);
  });

  it('sends nothing without its own tag (currentScript is null, e.g. loaded as a module)', () => {
    const page = openPage();
    expect(() => start(page.win, null)).not.toThrow();
    expect(page.beacon).not.toHaveBeenCalled();
  });
});

describe('what the snippet leaves alone', () => {
  it('sets no cookie and writes no storage', () => {
    const page = openPage();
    const writes = vi.spyOn(page.happy.Storage.prototype, 'setItem');
    run(page);
    page.win.history.pushState({}, '', '/cart');
    page.goBackTo('https://shop.example/products');
    expect(page.beacon).toHaveBeenCalledTimes(3);
    expect(page.win.document.cookie).toBe('');
    expect(page.win.localStorage.length).toBe(0);
    expect(page.win.sessionStorage.length).toBe(0);
    expect(writes).not.toHaveBeenCalled();
  });

  it('treats storage that cannot be read (sandboxed frame) as not opted out, without throwing', () => {
    const page = openPage();
    Object.defineProperty(page.happy, 'localStorage', {
      configurable: true,
      get() {
        throw new DOMException('The document is sandboxed', 'SecurityError');
      },
    });
    expect(() => run(page)).not.toThrow();
    expect(page.beacon).toHaveBeenCalledTimes(1);
  });

  it('never throws into the page when sendBeacon and fetch both throw', () => {
    const page = openPage();
    page.beacon.mockImplementation(() => {
      throw new TypeError('Illegal invocation');
    });
    page.fetch.mockImplementation(() => {
      throw new TypeError('fetch is blocked');
    });
    expect(() => run(page)).not.toThrow();
    expect(() => page.win.history.pushState({}, '', '/cart')).not.toThrow();
    expect(() => page.goBackTo('https://shop.example/products')).not.toThrow();
    expect(page.win.location.pathname).toBe('/products');
    expect(page.beacon).toHaveBeenCalledTimes(3);
  });

  it('never throws into the page when neither sendBeacon nor fetch exists', () => {
    const page = openPage();
    setProperty(page.happy.navigator, 'sendBeacon', undefined);
    setProperty(page.happy, 'fetch', undefined);
    expect(() => run(page)).not.toThrow();
    expect(() => page.win.history.pushState({}, '', '/cart')).not.toThrow();
  });

  it('never throws into the page when the default endpoint cannot be formed (inline tag, no src)', () => {
    const page = openPage(undefined, {});
    expect(() => run(page)).not.toThrow();
    expect(page.beacon).not.toHaveBeenCalled();
  });
});
