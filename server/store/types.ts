/** GA4 device fields, derived from a browser's User-Agent; page views only. */
export interface DeviceFields {
  category: string;
  language: string;
  operating_system?: string;
  operating_system_version?: string;
  browser?: string;
  browser_version?: string;
}

/** Event parameters as GA4 takes them. */
export type EventParams = Record<string, string | number>;

/** Who this install is, as reported to GA. */
export interface Identity {
  uuid: string;
  createdAt: number;
  /** Random, made once; keys the admin's signatures. Never sent, shown or logged. */
  signingSecret: string;
}

/** The token every new install starts with (token 1), and the id it had while it was a placeholder. */
export interface FirstToken {
  name: string;
  measurementId: string;
  apiSecret: string;
  ignorePaths: readonly string[];
  /** A stored token 1 still holding this id takes the current id and secret at start (the real one shipped). */
  placeholderId: string;
}

/** What a token is made of: its property, its secret, its switches and its ignore paths. */
export interface TokenSettings {
  name: string;
  measurementId: string;
  apiSecret: string;
  sendDailyStats: boolean;
  sendTaskEvents: boolean;
  sendPageViews: boolean;
  /** Regular expressions (sources) matched against page paths; a match is not sent to this token. */
  ignorePaths: string[];
}

/** A GA4 property that receives data, as stored. */
export interface Token extends TokenSettings {
  id: number;
  createdAt: number;
  updatedAt: number;
  lastDeliveredAt: number | null;
  /** GA's last complaint, with the secret already blanked. */
  lastError: string | null;
  lastErrorAt: number | null;
  /** GA is failing for this token: nothing is sent to it before this time (ms since epoch; 0 = not held). */
  heldUntil: number;
  /** Passing failures in a row, which the back-off grows with. */
  failures: number;
}

/** One event for one token, as the collector or the host hands it in. */
export interface NewEvent {
  tokenId: number;
  name: string;
  params: EventParams;
  /** Page views: GA's device fields (they belong to the whole request, so they group events). */
  device?: DeviceFields;
  /** When it happened, ms since epoch. */
  occurredAt: number;
}

/** An event taken from the outbox for delivery, its parameters and device as objects. */
export interface OutboxRow {
  id: number;
  tokenId: number;
  name: string;
  params: EventParams;
  device: DeviceFields | null;
  /** Groups events that may share one GA request ('' for events without a device). */
  deviceKey: string;
  occurredAt: number;
  attempts: number;
  /** When it fell due (before it was claimed). */
  dueAt: number;
}

/**
 * An event as claimed for delivery: its parameters and device as the JSON text they are stored as, which goes
 * into the request as it is (they were cut to GA's limits before they were stored).
 */
export interface ClaimedRow {
  id: number;
  tokenId: number;
  name: string;
  paramsJson: string;
  deviceJson: string | null;
  /** Groups events that may share one GA request ('' for events without a device). */
  deviceKey: string;
  occurredAt: number;
  attempts: number;
  /** When it fell due (before it was claimed). */
  dueAt: number;
}

/** Which claim holds rows: only the claim that took them may settle them. */
export interface ClaimRef {
  /** Unique to this claim; written into the rows while they are leased. */
  id: string;
  tokenId: number;
}

/** Rows claimed for delivery, with the claim that holds them. */
export interface Claim extends ClaimRef {
  rows: ClaimedRow[];
}

/** The host's numbers for the daily stats. */
export interface HostStats {
  users: number;
  tokens: number;
  /** Names of the host's installed apps (modules, plugins). */
  apps: string[];
}

/** How deliveries to one token are going, as counted in the database. */
export interface TokenCounts {
  tokenId: number;
  /** Events GA accepted since the given time (by the hour). */
  delivered: number;
  /** Events waiting in the outbox (leased ones included). */
  waiting: number;
  /** Events GA refused for good, kept for a retry. */
  failed: number;
}

/** One event GA refused for good. */
export interface FailedEvent {
  id: number;
  tokenId: number;
  tokenName: string;
  /** The GA event name (page_view, task_event, ...). */
  event: string;
  occurredAt: number;
  attempts: number;
  error: string;
}

/** Events dropped without being sent, by why and by GA event name (which tells the feature). */
export interface DropCount {
  reason: string;
  event: string;
  count: number;
}

/** Deliveries and failures of one token in one hour. */
export interface HourCount {
  tokenId: number;
  hour: number;
  delivered: number;
  failed: number;
}

/** One request that went to GA, exactly as it went (without the URL, which holds the secret). */
export interface SentRequest {
  at: number;
  status: number;
  events: number;
  body: string;
}
