import type { SentRequest } from '../store/types.ts';

/** A token's requests are written to the *sent* log at most this often; those in between wait in memory. */
export const SENT_LOG_EVERY_MS = 1_000;
/** A body larger than this is never held: it is written at once, with what waited before it. */
const SLOT_MAX_BYTES = 16 * 1024;
/** At most this much memory holds waiting bodies, all tokens together; past it requests are written at once. */
const HELD_MAX_BYTES = 8 * 1024 * 1024;

/** A request that went to GA, with its body's bytes as the connection sent them when it has them. */
export interface SentToGa extends SentRequest {
  bytes?: Buffer;
}

/** One place of a token's ring: a request waiting, its body copied into a buffer kept for the next one. */
interface Slot {
  at: number;
  status: number;
  events: number;
  length: number;
  bytes: Buffer;
}

interface TokenLog {
  slots: Slot[];
  /** The oldest waiting request's slot, and how many wait. */
  start: number;
  count: number;
  writtenAt: number;
}

/**
 * The requests a relay sent, on their way to the store's *sent* log (the admin's last requests a token). Under
 * load a token sends hundreds of requests a second while the log keeps its last 200: writing each body, to be
 * deleted a fraction of a second later, cost more than anything else in delivering a hit.
 *
 * A token's requests are written after its round's settlement when none were written in the last second;
 * otherwise the newest `keep` of them wait, for a later round's settlement or {@link due}. The log is thus at most a
 * second behind the end of a round, and a request after a quiet second is written at once. A waiting body is copied into a ring
 * of buffers the token reuses: held as a string or a buffer of its own, each cost the garbage collector as much
 * as writing it had. A body too large for a slot, or a ring past the memory bound, is written at once.
 */
export class SentLog {
  private readonly tokens = new Map<number, TokenLog>();
  /** Bytes of the slots' buffers, all tokens. */
  private held = 0;

  constructor(
    private readonly keep: number,
    private readonly everyMs: number = SENT_LOG_EVERY_MS,
  ) {}

  /**
   * A round's requests to `tokenId` (oldest first): what is written now, the waiting ones first (none when they
   * wait). At most `keep`, the newest.
   */
  take(tokenId: number, requests: readonly SentToGa[], now: number): SentRequest[] {
    let log = this.tokens.get(tokenId);
    if (this.keep <= 0 || (requests.length === 0 && !log?.count)) return [];
    // A token new here, or quiet since its rings were let go (see due), writes at once.
    if (!log) this.tokens.set(tokenId, (log = { slots: [], start: 0, count: 0, writtenAt: -Infinity }));
    if (now - log.writtenAt >= this.everyMs) return this.newest(this.written(log, requests, 0, now));
    for (let i = 0; i < requests.length; i++) {
      if (!this.hold(log, requests[i] as SentToGa)) return this.newest(this.written(log, requests, i, now));
    }
    return [];
  }

  /** When the first waiting request is due to be written (`Infinity`: none waits). */
  dueAt(): number {
    let at = Infinity;
    for (const log of this.tokens.values()) if (log.count > 0) at = Math.min(at, log.writtenAt + this.everyMs);
    return at;
  }

  /** Takes the waiting requests due by `now` (all of them with `all`), by token; lets go of quiet tokens' rings. */
  due(now: number, all = false): Array<{ tokenId: number; requests: SentRequest[] }> {
    const out: Array<{ tokenId: number; requests: SentRequest[] }> = [];
    for (const [tokenId, log] of this.tokens) {
      if (now - log.writtenAt < this.everyMs && !(all && log.count > 0)) continue;
      if (log.count === 0) this.release(tokenId, log);
      else out.push({ tokenId, requests: this.written(log, [], 0, now) });
    }
    return out;
  }

  /** Lets go of the rings of tokens not in `tokenIds` (deleted), and of what waits in them. */
  keepOnly(tokenIds: ReadonlySet<number>): void {
    for (const [tokenId, log] of this.tokens) if (!tokenIds.has(tokenId)) this.release(tokenId, log);
  }

  /** Bytes held for waiting bodies, all tokens. */
  heldBytes(): number {
    return this.held;
  }

  /** The waiting requests of `log` and `requests` from `from` on, as written now. */
  private written(log: TokenLog, requests: readonly SentToGa[], from: number, now: number): SentRequest[] {
    const out: SentRequest[] = [];
    for (let k = 0; k < log.count; k++) {
      const slot = log.slots[(log.start + k) % this.keep] as Slot;
      out.push({ at: slot.at, status: slot.status, events: slot.events, body: slot.bytes.toString('utf8', 0, slot.length) });
    }
    log.start = 0;
    log.count = 0;
    log.writtenAt = now;
    for (let i = from; i < requests.length; i++) {
      const { at, status, events, body } = requests[i] as SentToGa;
      out.push({ at, status, events, body });
    }
    return out;
  }

  /** Copies `request` into the token's ring, over its oldest when full; false when it may not be held. */
  private hold(log: TokenLog, request: SentToGa): boolean {
    const length = request.bytes ? request.bytes.length : Buffer.byteLength(request.body);
    if (length > SLOT_MAX_BYTES) return false;
    const full = log.count === this.keep;
    const index = full ? log.start : (log.start + log.count) % this.keep;
    let slot = log.slots[index];
    if (!slot || slot.bytes.length < length) {
      const size = Math.max(4096, 2 ** Math.ceil(Math.log2(length)));
      const grown = size - (slot?.bytes.length ?? 0);
      if (this.held + grown > HELD_MAX_BYTES) return false;
      this.held += grown;
      slot = { at: 0, status: 0, events: 0, length: 0, bytes: Buffer.allocUnsafeSlow(size) };
      log.slots[index] = slot;
    }
    slot.length = request.bytes ? request.bytes.copy(slot.bytes, 0) : slot.bytes.write(request.body, 0);
    slot.at = request.at;
    slot.status = request.status;
    slot.events = request.events;
    if (full) log.start = (log.start + 1) % this.keep;
    else log.count += 1;
    return true;
  }

  private release(tokenId: number, log: TokenLog): void {
    for (const slot of log.slots) this.held -= slot?.bytes.length ?? 0;
    this.tokens.delete(tokenId);
  }

  private newest(requests: SentRequest[]): SentRequest[] {
    return requests.length > this.keep ? requests.slice(requests.length - this.keep) : requests;
  }
}
