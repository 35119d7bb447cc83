/** What the browser snippet sends to `POST /collect`, as a JSON `text/plain` body. */
export interface PageViewHit {
  /** `location.pathname`: starts with `/`; the collector drops any query or fragment. */
  path: string;
  /** `document.title`, at most {@link MAX_TITLE_LENGTH} characters. */
  title: string;
  /** `navigator.language`, a BCP 47 tag of at most {@link MAX_LANGUAGE_LENGTH} characters. */
  language: string;
}

/** The largest `/collect` body accepted, in bytes. */
export const MAX_HIT_BYTES = 4096;
/** GA's limit for `page_title`. */
export const MAX_TITLE_LENGTH = 300;
/** The longest language tag accepted. */
export const MAX_LANGUAGE_LENGTH = 35;
/** The localStorage key a visitor sets to `'1'` to opt out in their browser. */
export const OPT_OUT_STORAGE_KEY = 'analytics:optout';
