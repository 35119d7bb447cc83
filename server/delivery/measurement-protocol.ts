import type { ClaimedRow, DeviceFields, EventParams, OutboxRow } from '../store/types.ts';

/** GA4 Measurement Protocol limits that every request keeps to. */
export const GA_LIMITS = {
  eventsPerRequest: 25,
  paramsPerEvent: 25,
  valueLength: 100,
  /** Parameters GA allows to be longer than `valueLength`. */
  longValueLength: { page_title: 300, page_location: 1000 } as Record<string, number>,
  /** GA's limit is 130 kB; stay clearly under it. */
  requestBytes: 120_000,
  /** GA takes timestamps up to 72 hours back; keep a margin for clock skew and the request's own time. */
  maxEventAgeMs: 72 * 3_600_000 - 10 * 60_000,
  name: /^[A-Za-z][A-Za-z0-9_]{0,39}$/,
} as const;

/** A page view's session lasts this long: the install's page views inside one window share a session id. */
export const SESSION_WINDOW_SECONDS = 30 * 60;

/** The JSON body of one Measurement Protocol request. */
export interface MpBody {
  client_id: string;
  non_personalized_ads: true;
  user_properties: { app_version: { value: string } };
  device?: DeviceFields;
  events: Array<{ name: string; timestamp_micros: number; params: EventParams }>;
}

/** One request to GA and the outbox rows it carries. */
export interface MpRequest {
  ids: number[];
  body: MpBody;
  /** Nothing more could join it: it holds 25 events, or the next would pass GA's size limit. */
  full: boolean;
  /** When its oldest event happened (ms since epoch). */
  oldestAt: number;
}

/** Cuts `text` to at most `max` characters without splitting a surrogate pair. */
export function clampText(text: string, max: number): string {
  if (text.length <= max) return text;
  let cut = text.slice(0, max);
  const last = cut.charCodeAt(cut.length - 1);
  if (last >= 0xd800 && last <= 0xdbff) cut = cut.slice(0, -1);
  return cut;
}

/** A parameter value within GA's limits: text cut to the length GA allows for that parameter. */
export function clampParam(key: string, value: string | number): string | number {
  if (typeof value === 'number') return Number.isFinite(value) ? value : 0;
  return clampText(value, GA_LIMITS.longValueLength[key] ?? GA_LIMITS.valueLength);
}

/** Parameters within GA's limits: valid names only, at most 25, values cut. */
export function clampParams(params: EventParams): EventParams {
  const out: EventParams = {};
  let count = 0;
  for (const [key, value] of Object.entries(params)) {
    if (!GA_LIMITS.name.test(key)) continue;
    if (count++ >= GA_LIMITS.paramsPerEvent) break;
    out[key] = clampParam(key, value);
  }
  return out;
}

/**
 * The session id of a page view: the start, in unix seconds, of its 30-minute window.
 * It needs no state, so it survives restarts. @example sessionId(Date.UTC(2026,0,1,10,44)) // 10:30 in seconds
 */
export function sessionId(occurredAtMs: number): number {
  const seconds = Math.floor(occurredAtMs / 1000);
  return seconds - (seconds % SESSION_WINDOW_SECONDS);
}

/** The params of a `page_view`: where (origin + path), what (title), the language and the session. */
export function pageViewParams(hit: { path: string; title: string; language: string }, pageOrigin: string, occurredAtMs: number): EventParams {
  // Five parameters whose names GA takes: only the values need cutting (as `clampParams` would, without its
  // look at every name on each hit).
  return {
    page_location: clampParam('page_location', pageOrigin + hit.path),
    page_title: clampParam('page_title', hit.title),
    language: clampParam('language', hit.language),
    session_id: sessionId(occurredAtMs),
    // GA's realtime view counts a user only with some engagement time.
    engagement_time_msec: 1,
  };
}

/** Where a token's events go: `/mp/collect`, or `/debug/mp/collect` to validate. */
export function mpUrl(gaUrl: string, token: { measurementId: string; apiSecret: string }, debug = false): string {
  const query = new URLSearchParams({ measurement_id: token.measurementId, api_secret: token.apiSecret });
  return `${gaUrl}${debug ? '/debug' : ''}/mp/collect?${query.toString()}`;
}

/** One request to GA as its exact JSON text, and the outbox rows it carries. */
export interface RawRequest {
  ids: number[];
  /** The body, exactly as it is sent (and kept for the admin). */
  json: string;
  /** Nothing more could join it: it holds 25 events, or the next would pass GA's size limit. */
  full: boolean;
  /** When its oldest event happened (ms since epoch). */
  oldestAt: number;
}

/** A request being filled: its events' JSON, and its size in bytes (counted exactly only once it may matter). */
interface OpenRequest {
  request: RawRequest;
  events: string[];
  /** A bound on its size: a UTF-16 unit is at most 3 bytes of UTF-8. */
  upper: number;
  /** Its exact size, once the bound came near GA's limit. */
  bytes: number | undefined;
}

/**
 * Whether `event` may join `open`: fewer than 25 events, and GA's size limit kept. A request of ordinary events
 * never comes near the limit, so their bytes are not counted: only the bound is, until it could pass the limit.
 */
function roomFor(open: OpenRequest, event: string, startBytes: number): boolean {
  if (open.events.length >= GA_LIMITS.eventsPerRequest) return false;
  if (open.bytes === undefined && open.upper + event.length * 3 + 1 <= GA_LIMITS.requestBytes) return true;
  open.bytes ??= open.events.reduce((sum, e) => sum + Buffer.byteLength(e) + 1, startBytes);
  return open.bytes + Buffer.byteLength(event) + 1 <= GA_LIMITS.requestBytes;
}

/**
 * Groups one token's claimed rows into GA requests, as JSON text built from the stored JSON of each event's
 * parameters and device (stored already within GA's limits): rows with the same device fields share a request,
 * each request has at most 25 events and stays under GA's size limit. Order is kept within a group. Nothing is
 * parsed and built again per event: this runs for every event delivered.
 */
export function rawRequests(rows: ClaimedRow[], clientId: string, appVersion: string): RawRequest[] {
  const groups = new Map<string, ClaimedRow[]>();
  for (const row of rows) {
    const group = groups.get(row.deviceKey);
    if (group) group.push(row);
    else groups.set(row.deviceKey, [row]);
  }
  const head = `{"client_id":${JSON.stringify(clientId)},"non_personalized_ads":true,"user_properties":{"app_version":{"value":${JSON.stringify(clampText(appVersion, 36))}}}`;
  const requests: RawRequest[] = [];
  for (const group of groups.values()) {
    const start = group[0]?.deviceJson ? `${head},"device":${group[0].deviceJson},"events":[` : `${head},"events":[`;
    const startBytes = Buffer.byteLength(start) + 2;
    let current: OpenRequest | undefined;
    const close = () => {
      if (current) current.request.json = `${start}${current.events.join(',')}]}`;
    };
    for (const row of group) {
      const event = `{"name":${JSON.stringify(row.name)},"timestamp_micros":${row.occurredAt * 1000},"params":${row.paramsJson}}`;
      if (current && !roomFor(current, event, startBytes)) {
        current.request.full = true;
        close();
        current = undefined;
      }
      if (!current) {
        current = { request: { ids: [], json: '', full: false, oldestAt: row.occurredAt }, events: [], upper: startBytes, bytes: undefined };
        requests.push(current.request);
      }
      current.request.ids.push(row.id);
      current.events.push(event);
      current.request.oldestAt = Math.min(current.request.oldestAt, row.occurredAt);
      current.upper += event.length * 3 + 1;
      if (current.bytes !== undefined) current.bytes += Buffer.byteLength(event) + 1;
    }
    if (current && current.events.length >= GA_LIMITS.eventsPerRequest) current.request.full = true;
    close();
  }
  return requests;
}

/**
 * Groups one token's outbox rows (parameters as objects, cut to GA's limits here) into GA requests, as
 * {@link rawRequests} does for claimed rows; each with its body as an object.
 */
export function buildRequests(rows: OutboxRow[], clientId: string, appVersion: string): MpRequest[] {
  const claimed: ClaimedRow[] = rows.map((row) => ({
    ...row,
    paramsJson: JSON.stringify(clampParams(row.params)),
    deviceJson: row.device ? JSON.stringify(row.device) : null,
  }));
  return rawRequests(claimed, clientId, appVersion).map(({ ids, json, full, oldestAt }) => ({ ids, body: JSON.parse(json) as MpBody, full, oldestAt }));
}
