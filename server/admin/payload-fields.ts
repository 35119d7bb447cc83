/** A scalar in a request body, named by its dotted path (e.g. `device.category`, `params.page_title`). */
export interface Leaf {
  path: string;
  value: string | number | boolean | null;
}

/** One event of a request body, split into its leaves. */
export interface EventLeaves {
  name: string;
  /** When it happened as the body says (microseconds since the epoch), if it says. */
  timestampMicros: number | undefined;
  /** Every leaf of the event: `name`, `timestamp_micros`, `params.<name>`, ... */
  leaves: Leaf[];
}

/** A request body split into what belongs to the whole request and what to each event. */
export interface BodyLeaves {
  /** Leaves outside `events`: `client_id`, `user_properties.app_version.value`, `device.*`, ... */
  request: Leaf[];
  events: EventLeaves[];
}

/**
 * Every scalar of a JSON value with its dotted path, in document order (array items get `[]`).
 * @example leavesOf({ device: { category: 'desktop' } }) // [{ path: 'device.category', value: 'desktop' }]
 */
export function leavesOf(value: unknown, prefix = ''): Leaf[] {
  if (Array.isArray(value)) return value.flatMap((item) => leavesOf(item, `${prefix}[]`));
  if (value !== null && typeof value === 'object') {
    return Object.entries(value).flatMap(([key, inner]) => leavesOf(inner, prefix === '' ? key : `${prefix}.${key}`));
  }
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return [{ path: prefix, value }];
  return [];
}

/**
 * A Measurement Protocol body split into request-level and event-level leaves. Works on any parsed JSON:
 * what GA received is shown as it is, even if it were not shaped as the relay shapes it.
 */
export function splitBody(body: unknown): BodyLeaves {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) return { request: leavesOf(body), events: [] };
  const { events, ...rest } = body as Record<string, unknown>;
  return {
    request: leavesOf(rest),
    events: (Array.isArray(events) ? events : []).map((event: unknown) => {
      const fields = event !== null && typeof event === 'object' ? (event as Record<string, unknown>) : {};
      return {
        name: typeof fields.name === 'string' ? fields.name : '',
        timestampMicros: typeof fields.timestamp_micros === 'number' ? fields.timestamp_micros : undefined,
        leaves: leavesOf(event),
      };
    }),
  };
}

/** The distinct paths of `leaves`, in the order they first appear. */
export function pathsOf(leaves: Leaf[]): string[] {
  return [...new Set(leaves.map((leaf) => leaf.path))];
}
