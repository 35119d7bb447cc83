import { MAX_TITLE_LENGTH, OPT_OUT_STORAGE_KEY } from '../shared/wire.ts';
import type { PageViewHit } from '../shared/wire.ts';

/** Privacy signals some browsers expose that the DOM typings lack. */
interface PrivacySignals {
  doNotTrack?: string | null;
  globalPrivacyControl?: boolean;
}

// One function on purpose: every helper, parameter and module boundary shows up in the
// gzipped size, which is a feature of this file (see scripts/snippet-size.ts).

/**
 * Sends a page view now and after each in-page navigation as `script` configures it, unless told not to; never throws.
 * @example start(window, document.currentScript as HTMLScriptElement | null)
 */
export function start(win: Window & PrivacySignals, script: HTMLScriptElement | null): void {
  try {
    const loc = win.location;
    const nav: Navigator & PrivacySignals = win.navigator;
    const history = win.history;
    // Without its tag (loaded as a module, or `currentScript` read too late) there is no endpoint: stay silent.
    if (
      !script ||
      (!script.hasAttribute('data-allow-localhost') &&
        (loc.protocol == 'file:' || /^(localhost|\[::1\])$|^127\./.test(loc.hostname))) ||
      nav.webdriver ||
      nav.doNotTrack == '1' ||
      win.doNotTrack == '1' ||
      nav.globalPrivacyControl
    ) {
      return;
    }
    // `src` is already absolute, so a relative tag still points at the collector that served it.
    const endpoint = script.getAttribute('data-endpoint') || new URL('/collect', script.src);
    let lastPath: string | undefined;
    const track = (): void => {
      try {
        const path = loc.pathname;
        // Query and hash changes, and routers re-stating the same URL, are not new page views.
        if (path != lastPath) {
          lastPath = path;
          // Read per page view so the flag takes effect without a reload; unreadable storage
          // (sandboxed frames, blocked cookies) means the visitor cannot have set it.
          try {
            if (win.localStorage.getItem(OPT_OUT_STORAGE_KEY) == '1') return;
          } catch {}
          // A string body goes out as text/plain, which is CORS-safelisted: no preflight.
          const body = JSON.stringify({
            path,
            title: win.document.title.slice(0, MAX_TITLE_LENGTH),
            language: nav.language,
          } satisfies PageViewHit);
          // sendBeacon answers false when the browser will not queue it; fetch is the second chance,
          // and its rejection is swallowed so it never reaches the page's error handlers.
          (nav.sendBeacon && nav.sendBeacon(endpoint, body)) ||
            win.fetch(endpoint, { method: 'POST', body, keepalive: true }).catch(Object);
        }
      } catch {}
    };
    for (const name of ['pushState', 'replaceState'] as const) {
      const original = history[name];
      history[name] = function (this: History, ...args: Parameters<History['pushState']>) {
        // The page's call, its result and its exceptions stay exactly its own; track() never throws.
        try {
          return original.apply(this, args);
        } finally {
          track();
        }
      };
    }
    win.addEventListener('popstate', track);
    track();
  } catch {}
}
