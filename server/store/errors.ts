/** The database cannot be opened, reached or migrated at start-up; the message says why in one line. */
export class DatabaseError extends Error {
  override name = 'DatabaseError';
}

/** What a 503 asks a client to wait, in seconds, while the database does not answer. */
export const RETRY_AFTER_S = 5;

/**
 * The database does not answer right now (gone away, full, locked past its busy timeout): a passing
 * condition, answered with 503 and `Retry-After`, never a 500. The message says why, without secrets.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/** Why a store closed by a stop answers nothing more: its calls fail at once with a {@link StoreUnavailableError}. */
export const STORE_CLOSED = 'the database is closed (analytics was stopped)';
