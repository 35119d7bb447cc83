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
