import { describe, expect, it } from 'vitest';
import { claimedEvents, pack, packetEventId, unpack, type PackedEvent } from '../../server/store/sql-packets.ts';

// A packet's text is what the outbox keeps of a commit's events for one token: written by `pack`, read back by
// `unpack` on every claim.

const desktop = JSON.stringify({ category: 'desktop', language: 'en-GB', browser: 'Chrome' });
const mobile = JSON.stringify({ category: 'mobile', language: 'fr' });
const event = (index: number, device: string | null, title: string): PackedEvent => ({
  index,
  params: JSON.stringify({ page_location: `https://example.com/p${index}`, page_title: title }),
  device,
  deviceKey: device === null ? '' : `key-${device.length}`,
  occurredAt: Date.UTC(2026, 11, 2) + index,
});

describe('packet texts', () => {
  it('reads back every event as written: parameters, device, its key and time, a device written once and referred to after', () => {
    // Titles with tabs, newlines and characters past ASCII: JSON escapes the first two, so a line stays one event.
    const events = [event(0, desktop, 'Tabs\tand\nlines'), event(1, mobile, 'Été · 夏'), event(2, desktop, 'again'), event(3, null, ''), event(4, mobile, 'x')];
    const text = pack(events);
    expect(text.split('\n')).toHaveLength(5);
    // The third event's device is the first's: written as a reference, not again.
    expect(text.split('\n')[2]).toContain('\t=0\t');
    expect(unpack(text)).toEqual(events);
  });

  it('reads a packet whose first events GA already took (places that do not start at 0)', () => {
    const events = [event(7, desktop, 'a'), event(8, desktop, 'b'), event(12, mobile, 'c')];
    expect(unpack(pack(events))).toEqual(events);
  });

  it('reads a line short of fields with the missing ones as defaults, never throwing', () => {
    expect(unpack('3\t1700')).toEqual([{ index: 3, occurredAt: 1700, deviceKey: '', device: null, params: '{}' }]);
    expect(unpack('')).toEqual([{ index: 0, occurredAt: 0, deviceKey: '', device: null, params: '{}' }]);
  });

  it('gives each event of a claimed packet its own id, the row it came from and its own fields', () => {
    const events = [event(0, desktop, 'a'), event(1, null, 'b')];
    const claimed = claimedEvents({
      id: 42,
      tokenId: 3,
      name: 'page_view',
      paramsJson: '',
      deviceJson: null,
      deviceKey: '',
      occurredAt: 0,
      attempts: 2,
      dueAt: 99,
      events: pack(events),
    });
    expect(claimed).toEqual(
      events.map((e) => ({
        id: packetEventId(42, e.index),
        tokenId: 3,
        name: 'page_view',
        paramsJson: e.params,
        deviceJson: e.device,
        deviceKey: e.deviceKey,
        occurredAt: e.occurredAt,
        attempts: 2,
        dueAt: 99,
      })),
    );
  });
});
