import { RE2JS } from 're2js';

/** A compiled ignore path: matched against every page view's path, so it must run in linear time. */
export interface PathPattern {
  test(path: string): boolean;
}

/**
 * Compiles an ignore path with RE2 semantics (no back-references or look-arounds), whose matching time
 * grows linearly with the path: an admin's `^/(a+)+$` cannot stall the collector. Throws when invalid.
 * @example compilePathPattern('^/admin/').test('/admin/users') // true
 */
export function compilePathPattern(source: string): PathPattern {
  const pattern = RE2JS.compile(source);
  return { test: (path) => pattern.matcher(path).find() };
}

/** Why `source` is not a usable ignore path, in one sentence, or undefined when it is. */
export function pathPatternProblem(source: string): string | undefined {
  try {
    compilePathPattern(source);
    return undefined;
  } catch (error) {
    const reason = error instanceof Error ? error.message.replace(/^error parsing regexp: /, '') : String(error);
    return `${JSON.stringify(source)} is not a valid regular expression: ${reason}`;
  }
}
