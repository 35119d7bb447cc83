import { describe, expect, it } from 'vitest';
import { SENT_LOG_EVERY_MS, SentLog, type SentToGa } from '../../server/delivery/sent-log.ts';

// The requests a relay sent wait in a SentLog for their turn to be written to the store's log: at most once a
// second a token under load, at once after a quiet second, never more than the newest `keep`.

const T0 = 1_000_000;
/** A request as the relay hands it over: with the bytes the connection sent, or (through fetch) without. */
const request = (n: number, options: { bytes?: boolean; body?: string } = {}): SentToGa => {
  const body = options.body ?? JSON.stringify({ n, title: `Été · 夏 · 🚀 ${n}` });
  return { at: T0 + n, status: 204, events: n % 25, body, bytes: options.bytes === false ? undefined : Buffer.from(body) };
};
const plain = ({ bytes: _, ...rest }: SentToGa) => rest;

describe('the sent log on its way to the store', () => {
  it('writes a request at once after a quiet second, holds the next ones, and writes them all, oldest first, a second after', () => {
    const log = new SentLog(200);
    const [a, b, c, d] = [request(1), request(2, { bytes: false }), request(3), request(4)];
    expect(log.take(7, [a], T0)).toEqual([plain(a)]);
    expect(log.take(7, [b, c], T0 + 10)).toEqual([]);
    expect(log.dueAt()).toBe(T0 + SENT_LOG_EVERY_MS);
    // Not yet: nothing is due before the second is up.
    expect(log.due(T0 + SENT_LOG_EVERY_MS - 1)).toEqual([]);
    expect(log.take(7, [d], T0 + SENT_LOG_EVERY_MS)).toEqual([plain(b), plain(c), plain(d)]);
    expect(log.dueAt()).toBe(Infinity);
  });

  it('hands the bodies back exactly as sent, characters past ASCII included, from the bytes or from the text', () => {
    const log = new SentLog(200);
    log.take(1, [request(0)], T0);
    const held = [request(1), request(2, { bytes: false }), request(3, { body: '{"a":"\\u0000 \t ü"}' })];
    log.take(1, held, T0 + 1);
    const [written] = log.due(T0 + 1, true);
    expect(written).toEqual({ tokenId: 1, requests: held.map(plain) });
  });

  it('keeps only the newest `keep` waiting, in order, and writes no more than that however many came', () => {
    const log = new SentLog(3);
    log.take(1, [request(0)], T0);
    for (let n = 1; n <= 10; n += 1) log.take(1, [request(n)], T0 + n);
    expect(log.due(T0 + SENT_LOG_EVERY_MS).flatMap((d) => d.requests.map((r) => r.at - T0))).toEqual([8, 9, 10]);
    // A round with more than `keep` of its own, after the second: the newest `keep` of them.
    log.take(1, [request(11)], T0 + SENT_LOG_EVERY_MS + 1);
    const many = Array.from({ length: 5 }, (_, i) => request(12 + i));
    expect(log.take(1, many, T0 + 2 * SENT_LOG_EVERY_MS + 1).map((r) => r.at - T0)).toEqual([14, 15, 16]);
  });

  it('keeps each token apart, writes the due ones at the end of a round, all of them when flushing', () => {
    const log = new SentLog(200);
    log.take(1, [request(1)], T0);
    log.take(2, [request(2)], T0 + 500);
    log.take(1, [request(3)], T0 + 600);
    log.take(2, [request(4)], T0 + 700);
    expect(log.due(T0 + SENT_LOG_EVERY_MS)).toEqual([{ tokenId: 1, requests: [plain(request(3))] }]);
    expect(log.due(T0 + SENT_LOG_EVERY_MS, true)).toEqual([{ tokenId: 2, requests: [plain(request(4))] }]);
    expect(log.due(T0 + SENT_LOG_EVERY_MS, true)).toEqual([]);
  });

  it('lets go of a quiet token’s buffers, and writes its next request at once', () => {
    const log = new SentLog(200);
    log.take(1, [request(1)], T0);
    log.take(1, [request(2)], T0 + 1);
    expect(log.heldBytes()).toBeGreaterThan(0);
    log.due(T0 + SENT_LOG_EVERY_MS);
    log.due(T0 + 3 * SENT_LOG_EVERY_MS);
    expect(log.heldBytes()).toBe(0);
    expect(log.take(1, [request(3)], T0 + 3 * SENT_LOG_EVERY_MS + 1)).toEqual([plain(request(3))]);
  });

  it('writes a body too large to hold at once, after what waited before it', () => {
    const log = new SentLog(200);
    log.take(1, [request(1)], T0);
    const large = request(3, { body: JSON.stringify({ big: 'x'.repeat(20_000) }) });
    log.take(1, [request(2)], T0 + 1);
    expect(log.take(1, [large, request(4)], T0 + 2)).toEqual([plain(request(2)), plain(large), plain(request(4))]);
  });

  it('holds at most 8 MiB of bodies, all tokens together: past it, requests are written at once', () => {
    const log = new SentLog(200);
    const body = JSON.stringify({ pad: 'y'.repeat(9_000) });
    let writtenAtOnce = 0;
    for (let token = 1; token <= 10; token += 1) {
      log.take(token, [request(0, { body })], T0);
      for (let n = 1; n <= 200; n += 1) writtenAtOnce += log.take(token, [request(n, { body })], T0 + 1).length;
    }
    expect(log.heldBytes()).toBeLessThanOrEqual(8 * 1024 * 1024);
    expect(writtenAtOnce).toBeGreaterThan(0);
    // Nothing was lost on the way: what waits plus what went at once is every request after the first of each token.
    const waiting = log.due(T0 + 1, true).reduce((sum, d) => sum + d.requests.length, 0);
    expect(waiting + writtenAtOnce).toBe(10 * 200);
  });

  it('lets go of a deleted token’s ring and what waits in it', () => {
    const log = new SentLog(200);
    for (const token of [1, 2]) {
      log.take(token, [request(1)], T0);
      log.take(token, [request(2)], T0 + 1);
    }
    const both = log.heldBytes();
    log.keepOnly(new Set([2]));
    expect(log.heldBytes()).toBe(both / 2);
    expect(log.due(T0 + 1, true)).toEqual([{ tokenId: 2, requests: [plain(request(2))] }]);
  });

  it('keeps nothing when the relay keeps no log', () => {
    const log = new SentLog(0);
    expect(log.take(1, [request(1)], T0)).toEqual([]);
    expect(log.due(T0 + 10 * SENT_LOG_EVERY_MS, true)).toEqual([]);
  });
});
