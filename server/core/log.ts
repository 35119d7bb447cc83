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
