/** Milliseconds since the epoch; tests pass a fake one. */
export type Clock = () => number;

/** The real clock. */
export const systemClock: Clock = () => Date.now();
