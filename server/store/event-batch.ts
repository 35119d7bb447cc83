import type { DeviceFields, NewEvent } from './types.ts';

/**
 * Events on their way into the outbox, as one group commit's batch: each distinct parameters and device object
 * as its JSON text once (the events of one hit share them), the rest in flat arrays. It crosses to the delivery
 * thread as a few strings and numbers rather than objects to copy field by field.
 */
export interface EventBatch {
  /** JSON texts; a device's is followed by its key (see {@link deviceKey}). */
  texts: string[];
  tokenIds: number[];
  names: string[];
  /** Per event, where its parameters' text is in `texts`. */
  params: number[];
  /** Per event, where its device's text is in `texts` (its key follows), or -1 for none. */
  devices: number[];
  occurredAt: number[];
}

/** A stable key for device fields: events with equal keys may share a GA request. */
export function deviceKey(device: DeviceFields): string {
  return JSON.stringify([
    device.category,
    device.language,
    device.operating_system ?? '',
    device.operating_system_version ?? '',
    device.browser ?? '',
    device.browser_version ?? '',
  ]);
}

/** Events as a batch: each parameters or device object turned into text once, however many events share it. */
export function eventBatch(events: readonly NewEvent[]): EventBatch {
  const batch: EventBatch = { texts: [], tokenIds: [], names: [], params: [], devices: [], occurredAt: [] };
  const seen = new Map<object, number>();
  for (const e of events) {
    let params = seen.get(e.params);
    if (params === undefined) seen.set(e.params, (params = batch.texts.push(JSON.stringify(e.params)) - 1));
    let device = -1;
    if (e.device) {
      device = seen.get(e.device) ?? -1;
      if (device === -1) seen.set(e.device, (device = batch.texts.push(JSON.stringify(e.device), deviceKey(e.device)) - 2));
    }
    batch.tokenIds.push(e.tokenId);
    batch.names.push(e.name);
    batch.params.push(params);
    batch.devices.push(device);
    batch.occurredAt.push(e.occurredAt);
  }
  return batch;
}
