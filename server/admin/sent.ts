import { classifyStatus } from '../delivery/token-round.ts';
import type { Services } from '../services.ts';
import type { SentRequest } from '../store/types.ts';
import { splitBody, type BodyLeaves } from './payload-fields.ts';

/** How many of a token's last requests the admin shows: all the relay keeps (its `keepSent` default). */
export const SENT_REQUESTS_SHOWN = 200;

/**
 * The last requests that went to a token, newest first, each body exactly as GA received it. The URL (which
 * carries the API secret) was never stored, so nothing here holds the secret.
 */
export function sentRequestsOf(services: Pick<Services, 'store'>, tokenId: number): Promise<SentRequest[]> {
  return services.store.sentRequests(tokenId, SENT_REQUESTS_SHOWN);
}

/** What GA's answer meant for the request's events. */
export type SentOutcome = 'delivered' | 'retry' | 'failed';

/** A sent request as the page shows it: the stored record, what the answer meant, and the body taken apart. */
export interface ReadableSentRequest extends SentRequest {
  outcome: SentOutcome;
  /** Undefined when the stored text is not JSON (then only the text is shown). */
  parts: BodyLeaves | undefined;
}

/** A stored request made readable; the exact text stays alongside. */
export function readableSent(request: SentRequest): ReadableSentRequest {
  let parts: BodyLeaves | undefined;
  try {
    parts = splitBody(JSON.parse(request.body));
  } catch {
    parts = undefined;
  }
  return { ...request, outcome: classifyStatus(request.status), parts };
}
