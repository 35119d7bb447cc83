import { RE2JS } from 're2js';

/** A compiled ignore path: matched against every page view's path, so it must run in linear time. */
export interface PathPattern {
  test(path: string): boolean;
  /** Instructions of the compiled program: a match takes at most this many steps a character of the path. */
  size: number;
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
  /**
   * Instructions of one compiled pattern. RE2 runs every instruction at most once a character, so this bounds a
   * match whatever the path: about 5 ms for a 2 KB path on a small server in the very worst case.
   */
  instructions: 100,
  /** Instructions of all of a token's patterns together: what one page view can cost that token, at most. */
  tokenInstructions: 300,
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
  return { test: (path) => pattern.matcher(path).find(), size: pattern.programSize() };
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

/**
 * Paths built from the pattern's own characters (its literals and what its classes name): a path made of what a
 * pattern looks for keeps the most of it alive at each character, which is where a match is slowest.
 */
function pathsAgainst(source: string): string[] {
  const characters = [...new Set(source.replace(/\\[dDwWsSbBAzpP]/g, '').replace(/[\\^$()[\]{}|*+?]/g, ''))]
    .filter((c) => c > ' ' && c !== '/')
    .slice(0, 16);
  const long = (unit: string) => `/${unit.repeat(Math.ceil(PATTERN_LIMITS.pathLength / unit.length))}`.slice(0, PATTERN_LIMITS.pathLength);
  return characters.length === 0 ? [] : [...characters.map(long), long(characters.join('')), long(`${characters.join('')}/`)];
}

/** The slowest match of `pattern` on the worst paths, in ms (the best of three tries each, against noise). */
function worstMatchMs(pattern: PathPattern, source: string): number {
  let worst = 0;
  for (const path of [...WORST_PATHS, ...pathsAgainst(source)]) {
    let best = Infinity;
    for (let i = 0; i < 3 && best > PATTERN_LIMITS.matchMs; i += 1) {
      const started = performance.now();
      pattern.test(path);
      best = Math.min(best, performance.now() - started);
    }
    worst = Math.max(worst, best);
    if (worst > PATTERN_LIMITS.matchMs) break;
  }
  return worst;
}

/**
 * Why `source` is not a usable ignore path, in one sentence, or undefined when it is: not valid RE2, longer than
 * 200 characters, a counted repeat over 100, a program of over 100 instructions, or slower than 1 ms on a
 * worst-case path (long runs of common path characters and of the pattern's own).
 */
export function pathPatternProblem(source: string): string | undefined {
  // Judged once per pattern: saving, loading the tokens and the admin's status all ask, and a timing verdict
  // must not change between them with the machine's load (accepted on save, then failing closed).
  if (verdicts.has(source)) return verdicts.get(source);
  const problem = judge(source);
  if (verdicts.size >= MAX_VERDICTS) verdicts.clear();
  verdicts.set(source, problem);
  return problem;
}

/** Patterns judged so far, by source; a few hundred in practice (50 a token at most). */
const verdicts = new Map<string, string | undefined>();
const MAX_VERDICTS = 2_000;

function judge(source: string): string | undefined {
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
  if (pattern.size > PATTERN_LIMITS.instructions) {
    return `${shown} is too complex to run on every page view (${pattern.size} instructions; at most ${PATTERN_LIMITS.instructions})`;
  }
  const ms = worstMatchMs(pattern, source);
  if (ms > PATTERN_LIMITS.matchMs) return `${shown} is too slow to run on every page view (${ms.toFixed(1)} ms on a long path; at most ${PATTERN_LIMITS.matchMs} ms)`;
  return undefined;
}

/** What a token's ignore paths run as, and why any of them cannot run as written. */
export interface CompiledIgnorePaths {
  patterns: PathPattern[];
  problems: string[];
}

/** Matches every path: what an unusable ignore path stands for. */
const IGNORE_EVERYTHING: PathPattern = { test: () => true, size: 1 };

/** Why a token's ignore paths together cost too much for every page view, or undefined when they do not. */
export function ignorePathsTotalProblem(sizes: number[]): string | undefined {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total <= PATTERN_LIMITS.tokenInstructions) return undefined;
  return `the ignore paths together are too complex to run on every page view (${total} instructions; at most ${PATTERN_LIMITS.tokenInstructions} for a token)`;
}

/**
 * A token's stored ignore paths as they run. Fail closed: one that no longer compiles or breaks the limits
 * (stored before they existed), or all of them together over the token's budget, match every path; the owner
 * meant to keep some paths from this token, so it keeps all of them rather than none, and the admin says so.
 */
export function compileIgnorePaths(sources: readonly string[]): CompiledIgnorePaths {
  const patterns: PathPattern[] = [];
  const problems: string[] = [];
  for (const source of sources) {
    const problem = pathPatternProblem(source);
    if (problem) problems.push(problem);
    patterns.push(problem ? IGNORE_EVERYTHING : compilePathPattern(source));
  }
  const total = ignorePathsTotalProblem(patterns.map((p) => p.size));
  if (total) return { patterns: [IGNORE_EVERYTHING], problems: [...problems, total] };
  return { patterns, problems };
}
