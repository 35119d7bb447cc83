import { RE2JS } from 're2js';

/** A compiled ignore path: matched against every page view's path, so it must run in linear time. */
export interface PathPattern {
  test(path: string): boolean;
}

/** The bounds an ignore path keeps to, since an anonymous visitor makes it run on every page view. */
export const PATTERN_LIMITS = {
  /** Characters in a pattern. */
  length: 200,
  /** The largest count of a counted repeat (`x{n}`, `x{n,m}`). */
  repeat: 100,
  /** How long one match may take on the worst paths a visitor can send (the longest path kept). */
  matchMs: 1,
  /** Paths are kept to this many characters, so no pattern ever runs on a longer one. */
  pathLength: 2048,
} as const;

/** Paths built to make a pattern work hard: long runs of what patterns commonly match. */
const WORST_PATHS = [
  `/${'a'.repeat(PATTERN_LIMITS.pathLength - 1)}`,
  `/${'a/'.repeat((PATTERN_LIMITS.pathLength - 1) / 2)}`,
  `/${'0123456789abcdefghijklmnopqrstuvwxyz-_.~%'.repeat(60)}`.slice(0, PATTERN_LIMITS.pathLength),
  '/'.repeat(PATTERN_LIMITS.pathLength),
];

/**
 * Compiles an ignore path with RE2 semantics (no back-references or look-arounds), whose matching time
 * grows linearly with the path: an admin's `^/(a+)+$` cannot stall the collector. Throws when invalid.
 * @example compilePathPattern('^/admin/').test('/admin/users') // true
 */
export function compilePathPattern(source: string): PathPattern {
  const pattern = RE2JS.compile(source);
  return { test: (path) => pattern.matcher(path).find() };
}

/** The largest count in a counted repeat of `source` (`{n}`, `{n,}`, `{n,m}`), 0 when there is none. */
function largestRepeat(source: string): number {
  let largest = 0;
  // An escaped brace is a literal; anything else shaped {n,m} is a counted repeat in RE2.
  for (const match of source.matchAll(/(\\*)\{(\d+)(?:,(\d*))?\}/g)) {
    if ((match[1] ?? '').length % 2 === 1) continue;
    largest = Math.max(largest, Number(match[2]), Number(match[3] || 0));
  }
  return largest;
}

/** The slowest match of `pattern` on the worst paths, in ms (the best of three tries each, against noise). */
function worstMatchMs(pattern: PathPattern): number {
  let worst = 0;
  for (const path of WORST_PATHS) {
    let best = Infinity;
    for (let i = 0; i < 3; i += 1) {
      const started = performance.now();
      pattern.test(path);
      best = Math.min(best, performance.now() - started);
    }
    worst = Math.max(worst, best);
  }
  return worst;
}

/**
 * Why `source` is not a usable ignore path, in one sentence, or undefined when it is: not valid RE2, longer than
 * 200 characters, a counted repeat over 100, or slower than 1 ms on a worst-case path.
 */
export function pathPatternProblem(source: string): string | undefined {
  const shown = JSON.stringify(source.length > 60 ? `${source.slice(0, 60)}…` : source);
  if (source.length > PATTERN_LIMITS.length) return `${shown} is longer than ${PATTERN_LIMITS.length} characters`;
  if (largestRepeat(source) > PATTERN_LIMITS.repeat) return `${shown} repeats something more than ${PATTERN_LIMITS.repeat} times ({n} at most 100)`;
  let pattern: PathPattern;
  try {
    pattern = compilePathPattern(source);
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^error parsing regexp: /, '') : String(error);
    return `${shown} is not a valid regular expression: ${reason}`;
  }
  const ms = worstMatchMs(pattern);
  if (ms > PATTERN_LIMITS.matchMs) return `${shown} is too slow to run on every page view (${ms.toFixed(1)} ms on a long path; at most ${PATTERN_LIMITS.matchMs} ms)`;
  return undefined;
}
