/** Where the collector writes what an operator should know; one line a message. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
}

/** Writes to stdout/stderr with the level in front. Callers never pass secrets. */
export const consoleLogger: Logger = {
  info: (message) => console.log(`[analytics] ${message}`),
  warn: (message) => console.warn(`[analytics] warning: ${message}`),
  error: (message, error) =>
    console.error(`[analytics] error: ${message}${error instanceof Error ? `: ${error.stack ?? error.message}` : ''}`),
};

/** Drops everything (tests). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** How often a line about something anybody's requests can repeat (a 503, a 500) may be written at most. */
export const REPEATED_LOG_EVERY_MS = 10_000;

/**
 * Logs errors nobody expected (a 500), each with its stack, at most once every `everyMs` per route and kind of
 * error, with how many more there were: anybody's requests that find one fault can neither fill the log nor
 * hide another fault's line behind theirs. Keyed by the matched route (a fixed set), not the path asked for.
 */
export function internalErrorLog(log: Logger, clock: () => number, everyMs: number): (request: { method: string; route: string }, error: unknown) => void {
  const lines = new Map<string, ReturnType<typeof rateLimitedLine>>();
  return ({ method, route }, error) => {
    const kind = error instanceof Error ? error.name : typeof error;
    const key = `${method} ${route} ${kind}`;
    let note = lines.get(key);
    if (!note) {
      // Bounded all the same: past 1,000 kinds the oldest is forgotten.
      if (lines.size >= 1_000) lines.delete(lines.keys().next().value as string);
      lines.set(key, (note = rateLimitedLine(clock, everyMs)));
    }
    note((n) => log.error(`${method} ${route} failed${n > 1 ? ` (${n - 1} more like it since the last line)` : ''}`, error));
  };
}

/**
 * For events anybody can cause (wrong credentials, requests refused during an outage): `write` is called at
 * most once every `everyMs`, with how many events happened since its last call, so that they cannot fill the log.
 * @example const note = rateLimitedLine(clock, 10_000); note((n) => log.warn(`${n} wrong credentials tried`));
 */
export function rateLimitedLine(clock: () => number, everyMs: number): (write: (count: number) => void) => void {
  let writtenAt = -Infinity;
  let count = 0;
  return (write) => {
    count += 1;
    const now = clock();
    if (now - writtenAt < everyMs) return;
    write(count);
    writtenAt = now;
    count = 0;
  };
}
