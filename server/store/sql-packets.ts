// How events are written to the outbox, and packets. The events one commit queues for one token under one name
// share one row, a packet. Under load a group commit carries dozens of hits, and a row per event and token was most
// of what queueing and delivering cost (each row inserted, indexed, read and deleted on its own). A packet is
// written once, read once and deleted once, and never changed: when GA took part of it and the rest waits for a
// later request, the rest moves to a new packet; when some of it were refused or put off, or the bound's trim or
// the expiry needs single events, it is replaced by rows of one event each. A packet's status is `packed`, not `pending`: a process of an earlier version
// sharing the database during a rolling upgrade takes only `pending` rows, and so never sends a packet as one event.
import { idIn, type SqlDriver, type SqlExecutor } from './sql-driver.ts';
import { eventBatch, type EventBatch } from './event-batch.ts';
import type { ClaimedRow, NewEvent } from './types.ts';

/** At most this many events share a packet. */
export const PACKET_MAX = 1_000;
/** An event's place in its packet is below this. */
const SLOTS = 1_024;

/** One event in a packet, its parameters and device as the stored JSON text. */
export interface PackedEvent {
  /** Its place in the packet as queued: it keeps it while the packet loses the events GA took before it. */
  index: number;
  params: string;
  device: string | null;
  deviceKey: string;
  occurredAt: number;
}

/**
 * The id of a packet's event as the relay sees it (claim, settle, discard): negative, so it never equals the id
 * of a row holding one event.
 */
export function packetEventId(rowId: number, index: number): number {
  return -(rowId * SLOTS + index);
}

/** The row an event id lives in: itself, or its packet. */
export function rowOf(id: number): number {
  return id > 0 ? id : Math.floor(-id / SLOTS);
}

/**
 * A packet's text: one event a line, its fields split by tabs. The JSON texts never hold a raw tab or newline
 * (JSON escapes them), and neither does a number. A device already written on an earlier line of the packet is
 * written as `=` and that line's place, with no key: the events of a packet mostly share a few devices.
 */
export function pack(events: readonly PackedEvent[]): string {
  const written = new Map<string, number>();
  return events
    .map((e) => {
      const device = e.device ?? '';
      const earlier = device === '' ? undefined : written.get(device);
      if (earlier !== undefined) return `${e.index}\t${e.occurredAt}\t\t=${earlier}\t${e.params}`;
      if (device !== '') written.set(device, e.index);
      return `${e.index}\t${e.occurredAt}\t${e.deviceKey}\t${device}\t${e.params}`;
    })
    .join('\n');
}

/** The events of a packet's text, in the order they were queued. */
export function unpack(text: string): PackedEvent[] {
  const events: PackedEvent[] = [];
  const byIndex = new Map<number, PackedEvent>();
  // Read in place, by the positions of its separators: splitting every line into an array cost twice as much.
  for (let start = 0; ; ) {
    const newline = text.indexOf('\n', start);
    const end = newline === -1 ? text.length : newline;
    const t1 = text.indexOf('\t', start);
    const t2 = t1 === -1 ? -1 : text.indexOf('\t', t1 + 1);
    const t3 = t2 === -1 ? -1 : text.indexOf('\t', t2 + 1);
    const t4 = t3 === -1 ? -1 : text.indexOf('\t', t3 + 1);
    // JSON holds no raw tab: a fifth one (never written) ends the parameters as a split would.
    const t5 = t4 === -1 ? -1 : text.indexOf('\t', t4 + 1);
    const fields: [string, string, string, string, string] =
      t4 !== -1 && t4 < end
        ? [text.slice(start, t1), text.slice(t1 + 1, t2), text.slice(t2 + 1, t3), text.slice(t3 + 1, t4), text.slice(t4 + 1, t5 !== -1 && t5 < end ? t5 : end)]
        : lineFields(text.slice(start, end));
    const event = packedEvent(fields, byIndex);
    byIndex.set(event.index, event);
    events.push(event);
    if (newline === -1) return events;
    start = newline + 1;
  }
}

/** A line short of fields (never written so): what it has, the rest as defaults. */
function lineFields(line: string): [string, string, string, string, string] {
  const [index = '0', occurredAt = '0', deviceKey = '', device = '', params = '{}'] = line.split('\t');
  return [index, occurredAt, deviceKey, device, params];
}

function packedEvent(
  [index, occurredAt, deviceKey, device, params]: [string, string, string, string, string],
  byIndex: ReadonlyMap<number, PackedEvent>,
): PackedEvent {
  const same = device.startsWith('=') ? byIndex.get(Number(device.slice(1))) : undefined;
  return same
    ? { index: Number(index), occurredAt: Number(occurredAt), deviceKey: same.deviceKey, device: same.device, params }
    : { index: Number(index), occurredAt: Number(occurredAt), deviceKey, device: device === '' ? null : device, params };
}

/** A claimed row as the relay takes it: one event, or each event of a packet under its own id. */
export function claimedEvents(row: ClaimedRow & { events: string | null }): ClaimedRow[] {
  const { events, ...single } = row;
  if (events === null) return [single];
  const rowId = Number(row.id);
  const { tokenId, name, attempts, dueAt } = row;
  // Each event as one object literal of one shape: a claim makes hundreds a second.
  return unpack(events).map((e) => ({
    id: packetEventId(rowId, e.index),
    tokenId,
    name,
    paramsJson: e.params,
    deviceJson: e.device,
    deviceKey: e.deviceKey,
    occurredAt: e.occurredAt,
    attempts,
    dueAt,
  }));
}

const statusOf = (dialect: SqlDriver['dialect']) => (dialect === 'sqlite' ? '+status' : 'status');

/**
 * Replaces the waiting packets among `rowIds` by rows of one event each, in the packet's order (so the oldest
 * gets the lowest id), with the packet's tries, due time and error. The events of `leave` are not kept (they
 * were delivered). Returns each event id's new row, and how many of `leave` went.
 */
export async function explode(
  tx: SqlExecutor,
  dialect: SqlDriver['dialect'],
  rowIds: readonly number[],
  leave: ReadonlySet<number> = new Set(),
): Promise<{ rows: Map<number, number>; left: number }> {
  const rows = new Map<number, number>();
  let left = 0;
  if (rowIds.length === 0) return { rows, left };
  const [inList, param] = idIn(dialect, 'id', rowIds);
  const packets = await tx.query<{ id: number; tokenId: number; name: string; events: string; attempts: number; due: number; lastError: string | null }>(
    `SELECT id, token_id AS "tokenId", name, events, attempts, next_attempt_at AS due, last_error AS "lastError"
     FROM outbox WHERE ${inList} AND ${statusOf(dialect)} = 'packed' ORDER BY id`,
    [param],
  );
  for (const packet of packets.rows) {
    const rowId = Number(packet.id);
    const events = unpack(packet.events);
    for (const e of events) {
      const id = packetEventId(rowId, e.index);
      if (leave.has(id)) {
        left += 1;
        continue;
      }
      const inserted = await tx.query<{ id: number }>(
        `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at, attempts, last_error)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
        [packet.tokenId, packet.name, e.params, e.device, e.deviceKey, e.occurredAt, packet.due, packet.attempts, packet.lastError],
      );
      rows.set(id, Number(inserted.rows[0]?.id));
    }
  }
  const gone = packets.rows.map((p) => Number(p.id));
  if (gone.length > 0) {
    const [goneList, goneParam] = idIn(dialect, 'id', gone);
    await tx.query(`DELETE FROM outbox WHERE ${goneList}`, [goneParam]);
  }
  return { rows, left };
}

/** Event ids as rows of one event: those of exploded packets by their new rows; those whose packet went are left out. */
export function translate(ids: readonly number[], rows: ReadonlyMap<number, number>): number[] {
  return ids.flatMap((id) => {
    if (id > 0) return [id];
    const row = rows.get(id);
    return row === undefined ? [] : [row];
  });
}

/**
 * Settles the packets among a round's event ids: a packet GA took whole is deleted. While the claim still holds
 * the token, the rest of one GA took in part moves to a new packet, or becomes single events when some of it were
 * refused or put off. Returns how many events of packets were delivered, and the new rows of exploded events.
 */
export async function settlePackets(
  tx: SqlExecutor,
  dialect: SqlDriver['dialect'],
  ids: { delivered: readonly number[]; others: readonly number[] },
  held: boolean,
): Promise<{ delivered: number; rows: Map<number, number> }> {
  const packetRows = [...new Set([...ids.delivered, ...ids.others].filter((id) => id < 0).map(rowOf))];
  if (packetRows.length === 0) return { delivered: 0, rows: new Map() };
  const [inList, param] = idIn(dialect, 'id', packetRows);
  const { rows } = await tx.query<{ id: number; n: number }>(`SELECT id, n FROM outbox WHERE ${inList} AND ${statusOf(dialect)} = 'packed'`, [
    param,
  ]);
  const deliveredIds = new Set(ids.delivered.filter((id) => id < 0));
  const deliveredPerRow = new Map<number, number>();
  for (const id of deliveredIds) deliveredPerRow.set(rowOf(id), (deliveredPerRow.get(rowOf(id)) ?? 0) + 1);
  const whole = rows.filter((r) => deliveredPerRow.get(Number(r.id)) === Number(r.n));
  let delivered = 0;
  if (whole.length > 0) {
    const [wholeList, wholeParam] = idIn(dialect, 'id', whole.map((r) => Number(r.id)));
    await tx.query(`DELETE FROM outbox WHERE ${wholeList}`, [wholeParam]);
    delivered += whole.reduce((sum, r) => sum + Number(r.n), 0);
  }
  // Another relay took the token over: the packets GA took only in part stay as they are, and it sends them.
  if (!held) return { delivered, rows: new Map() };
  // GA took part of a packet and nothing of it failed: the rest waits for a later request (its linger) in a new
  // packet, with the old one's tries and due time. A packet is never changed in place, so a relay that lost the
  // token and settles late never takes what is left for what it sent. A packet with failed or put-off events
  // becomes single events.
  const unsettled = new Set(ids.others.filter((id) => id < 0).map(rowOf));
  const partial = rows.filter((r) => !whole.includes(r)).map((r) => Number(r.id));
  const rest = partial.filter((id) => !unsettled.has(id));
  if (rest.length > 0) {
    const [restList, restParam] = idIn(dialect, 'id', rest);
    const packets = await tx.query<{ id: number; events: string }>(`SELECT id, events FROM outbox WHERE ${restList}`, [restParam]);
    for (const packet of packets.rows) {
      const rowId = Number(packet.id);
      const events = unpack(packet.events);
      const kept = events.filter((e) => !deliveredIds.has(packetEventId(rowId, e.index)));
      if (kept.length > 0) {
        await tx.query(
          `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at, attempts, last_error, status, n, events)
           SELECT token_id, name, params, device, device_key, occurred_at, next_attempt_at, attempts, last_error, status, ?, ? FROM outbox WHERE id = ?`,
          [kept.length, pack(kept), rowId],
        );
      }
      await tx.query('DELETE FROM outbox WHERE id = ?', [rowId]);
      delivered += events.length - kept.length;
    }
  }
  const exploded = await explode(
    tx,
    dialect,
    partial.filter((id) => unsettled.has(id)),
    deliveredIds,
  );
  return { delivered: delivered + exploded.left, rows: exploded.rows };
}

/** One outbox row to write: an event, or a packet of a token's events under one name. */
type NewRow = readonly [
  tokenId: number,
  name: string,
  params: string,
  device: string | null,
  deviceKey: string,
  occurredAt: number,
  n: number,
  events: string | null,
  status: 'pending' | 'packed',
];

/**
 * Writes events (as they are, or as a batch) in the caller's transaction and counts them by name. The events of one token under one name share
 * a packet. A new event is due from when it happened, so events taken in due order come oldest
 * first; a token deleted meanwhile gets nothing.
 */
export async function insertEvents(tx: SqlExecutor, dialect: SqlDriver['dialect'], input: readonly NewEvent[] | EventBatch): Promise<Map<string, number>> {
  const batch = Array.isArray(input) ? eventBatch(input as readonly NewEvent[]) : (input as EventBatch);
  const written = new Map<string, number>();
  if (batch.tokenIds.length === 0) return written;
  // The tokens first, in one statement: PostgreSQL locks them (a delete waits for this commit, or this waits for
  // the delete and then leaves its token out); SQLite's write transaction holds the whole file already.
  const [inList, wanted] = idIn(dialect, 'id', [...new Set(batch.tokenIds)]);
  const { rows: present } = await tx.query<{ id: number }>(`SELECT id FROM tokens WHERE ${inList}${dialect === 'postgres' ? ' FOR KEY SHARE' : ''}`, [wanted]);
  const alive = new Set(present.map((r) => Number(r.id)));
  const { texts } = batch;
  const groups = new Map<string, { tokenId: number; name: string; events: PackedEvent[] }>();
  batch.tokenIds.forEach((tokenId, i) => {
    if (!alive.has(tokenId)) return;
    const name = batch.names[i] as string;
    const id = `${tokenId}:${name}`;
    let group = groups.get(id);
    if (!group) groups.set(id, (group = { tokenId, name, events: [] }));
    const device = batch.devices[i] as number;
    group.events.push({
      // Its place in its packet (a group past PACKET_MAX fills several).
      index: group.events.length % PACKET_MAX,
      params: texts[batch.params[i] as number] as string,
      device: device === -1 ? null : (texts[device] as string),
      deviceKey: device === -1 ? '' : (texts[device + 1] as string),
      occurredAt: batch.occurredAt[i] as number,
    });
  });
  const rows: NewRow[] = [];
  for (const { tokenId, name, events: queued } of groups.values()) {
    for (let i = 0; i < queued.length; i += PACKET_MAX) {
      const part = queued.length <= PACKET_MAX ? queued : queued.slice(i, i + PACKET_MAX);
      const [first] = part as [PackedEvent];
      let oldest = first.occurredAt;
      for (const e of part) if (e.occurredAt < oldest) oldest = e.occurredAt;
      rows.push(
        part.length === 1
          ? [tokenId, name, first.params, first.device, first.deviceKey, first.occurredAt, 1, null, 'pending']
          : [tokenId, name, '', null, '', oldest, part.length, pack(part), 'packed'],
      );
    }
    written.set(name, (written.get(name) ?? 0) + queued.length);
  }
  if (rows.length === 0) return written;
  if (dialect === 'postgres') {
    // One statement writes the whole batch: one round trip, whatever its size.
    await tx.query(
      `INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at, n, events, status)
       SELECT v.token_id, v.name, v.params, v.device, v.device_key, v.occurred_at, v.occurred_at, v.n, v.events, v.status
       FROM unnest(?::bigint[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::int[], ?::text[], ?::text[])
         AS v(token_id, name, params, device, device_key, occurred_at, n, events, status)`,
      [0, 1, 2, 3, 4, 5, 6, 7, 8].map((i) => rows.map((r) => r[i])),
    );
    return written;
  }
  // SQLite: a prepared insert per row costs less than any statement that checks the token per row.
  for (const [tokenId, name, params, device, deviceKeyValue, occurredAt, n, packed, status] of rows) {
    await tx.query('INSERT INTO outbox (token_id, name, params, device, device_key, occurred_at, next_attempt_at, n, events, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)', [
      tokenId,
      name,
      params,
      device,
      deviceKeyValue,
      occurredAt,
      occurredAt,
      n,
      packed,
      status,
    ]);
  }
  return written;
}
