import { Window as HappyWindow } from 'happy-dom';
import { vi, type Mock } from 'vitest';
import type { PageViewHit } from '../../shared/wire.ts';

/** The snippet's tag as a page would write it: `src` plus any `data-*` attributes. */
export type TagAttributes = Record<string, string>;

export interface FakePage {
  /** happy-dom's window, typed as the DOM's so it can be handed to the snippet. */
  win: Window;
  happy: HappyWindow;
  script: HTMLScriptElement;
  /** `navigator.sendBeacon`, answering true (queued) unless told otherwise. */
  beacon: Mock<(url: string | URL, data?: BodyInit | null) => boolean>;
  /** `window.fetch`, answering 204. */
  fetch: Mock<(input: RequestInfo | URL, init?: RequestInit) => Promise<Response>>;
  /** Moves the page to `url` the way a back/forward button does: no wrapper involved, then `popstate`. */
  goBackTo(url: string): void;
}

/** Replaces a property on one object only, as a browser exposing a different value would. */
export function setProperty(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, configurable: true, writable: true });
}

const opened: HappyWindow[] = [];

/** A fresh page at `url` whose snippet tag has `attributes`, with sendBeacon and fetch stubbed. */
export function openPage(
  url = 'https://shop.example/products?sort=price#top',
  attributes: TagAttributes = { src: 'https://collector.example/analytics.js' },
): FakePage {
  const happy = new HappyWindow({ url });
  opened.push(happy);
  happy.document.title = 'Products';
  const script = happy.document.createElement('script');
  for (const [name, value] of Object.entries(attributes)) script.setAttribute(name, value);
  const win = happy as unknown as Window;
  // An ordinary visitor's navigator: happy-dom itself claims `webdriver`.
  setProperty(happy.navigator, 'webdriver', false);
  setProperty(happy.navigator, 'language', 'de-CH');
  const beacon = vi.fn((_url: string | URL, _data?: BodyInit | null) => true);
  setProperty(happy.navigator, 'sendBeacon', beacon);
  const fetch = vi.fn((_input: RequestInfo | URL, _init?: RequestInit) =>
    Promise.resolve(new Response(null, { status: 204 })),
  );
  setProperty(happy, 'fetch', fetch);
  return {
    win,
    happy,
    script: script as unknown as HTMLScriptElement,
    beacon,
    fetch,
    goBackTo(to: string) {
      happy.happyDOM.setURL(to);
      happy.dispatchEvent(new happy.PopStateEvent('popstate'));
    },
  };
}

/** Closes every page opened since the last call. */
export async function closePages(): Promise<void> {
  await Promise.all(opened.splice(0).map((page) => page.happyDOM.close()));
}

/** The hits a page sent, by beacon or fetch, in order of the calls to each. */
export function sentHits(page: FakePage): PageViewHit[] {
  const bodies = [
    ...page.beacon.mock.calls.map(([, data]) => data),
    ...page.fetch.mock.calls.map(([, init]) => init?.body),
  ];
  return bodies.map((body) => JSON.parse(String(body)) as PageViewHit);
}

/** The paths of the hits a page sent by beacon, in order. */
export function beaconPaths(page: FakePage): string[] {
  return page.beacon.mock.calls.map(([, data]) => (JSON.parse(String(data)) as PageViewHit).path);
}
