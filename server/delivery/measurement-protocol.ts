import type { DeviceFields, EventParams, OutboxRow } from '../store/types.ts';

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
  return clampParams({
    page_location: pageOrigin + hit.path,
    page_title: hit.title,
    language: hit.language,
    session_id: sessionId(occurredAtMs),
    // GA's realtime view counts a user only with some engagement time.
    engagement_time_msec: 1,
  });
}

/** Where a token's events go: `/mp/collect`, or `/debug/mp/collect` to validate. */
export function mpUrl(gaUrl: string, token: { measurementId: string; apiSecret: string }, debug = false): string {
  const query = new URLSearchParams({ measurement_id: token.measurementId, api_secret: token.apiSecret });
  return `${gaUrl}${debug ? '/debug' : ''}/mp/collect?${query.toString()}`;
}

function emptyBody(clientId: string, appVersion: string, device: DeviceFields | null): MpBody {
  return {
    client_id: clientId,
    non_personalized_ads: true,
    user_properties: { app_version: { value: clampText(appVersion, 36) } },
    ...(device ? { device } : {}),
    events: [],
  };
}

/**
 * Groups one token's outbox rows into GA requests: rows with the same device fields share a request,
 * each request has at most 25 events and stays under GA's size limit. Order is kept within a group.
 */
export function buildRequests(rows: OutboxRow[], clientId: string, appVersion: string): MpRequest[] {
  const groups = new Map<string, OutboxRow[]>();
  for (const row of rows) {
    const group = groups.get(row.deviceKey);
    if (group) group.push(row);
    else groups.set(row.deviceKey, [row]);
  }
  const requests: MpRequest[] = [];
  for (const group of groups.values()) {
    let current: MpRequest | undefined;
    let bytes = 0;
    for (const row of group) {
      const event = { name: row.name, timestamp_micros: row.occurredAt * 1000, params: clampParams(row.params) };
      const eventBytes = Buffer.byteLength(JSON.stringify(event)) + 1;
      if (!current || current.ids.length >= GA_LIMITS.eventsPerRequest || bytes + eventBytes > GA_LIMITS.requestBytes) {
        if (current) current.full = true;
        current = { ids: [], body: emptyBody(clientId, appVersion, row.device), full: false, oldestAt: row.occurredAt };
        bytes = Buffer.byteLength(JSON.stringify(current.body));
        requests.push(current);
      }
      current.ids.push(row.id);
      current.body.events.push(event);
      current.oldestAt = Math.min(current.oldestAt, row.occurredAt);
      bytes += eventBytes;
    }
    if (current && current.ids.length >= GA_LIMITS.eventsPerRequest) current.full = true;
  }
  return requests;
}
