import { describe, expect, it } from 'vitest';
import { compileIgnorePaths, compilePathPattern, pathPatternProblem, PATTERN_LIMITS } from '../../server/tokens/ignore-paths.ts';

describe('ignore paths', () => {
  it('match page paths like regular expressions do', () => {
    const admin = compilePathPattern('^/admin/');
    expect(admin.test('/admin/users')).toBe(true);
    expect(admin.test('/dashboard/admin/')).toBe(false);
    expect(compilePathPattern('secret$').test('/a/secret')).toBe(true);
    expect(compilePathPattern('^/(de|fr)/').test('/fr/page')).toBe(true);
  });

  it('refuse what cannot run in linear time or does not compile, saying why', () => {
    expect(pathPatternProblem('^/ok/')).toBeUndefined();
    expect(pathPatternProblem('(a)\\1')).toMatch(/^"\(a\)\\\\1" is not a valid regular expression: invalid escape sequence/);
    expect(pathPatternProblem('^/(?=x)')).toMatch(/is not a valid regular expression: invalid or unsupported Perl syntax/);
    expect(pathPatternProblem('^/(')).toMatch(/missing closing \)/);
  });

  it('finish a pattern that would backtrack for ages on a long hostile path', () => {
    // With a backtracking engine this call would not return within the test's lifetime.
    expect(compilePathPattern('^/(a+)+$').test(`/${'a'.repeat(50_000)}!`)).toBe(false);
  });

  it('bound what any path can cost: a program of at most 100 instructions, at most 300 for a token', () => {
    expect(compilePathPattern('^/admin/').size).toBeLessThanOrEqual(PATTERN_LIMITS.instructions);
    expect(pathPatternProblem('^/(?:[^/]*Z){100}')).toMatch(/304 instructions; at most 100/);
    const long = (c: string) => `^/${c.repeat(80)}`;
    expect(compileIgnorePaths([long('a'), long('b'), long('c')]).problems).toEqual([]);
    // Stored before the limits existed: together over the budget, so the token ignores every path, and says why.
    const over = compileIgnorePaths([long('a'), long('b'), long('c'), long('d')]);
    expect(over.problems).toEqual([expect.stringMatching(/together are too complex/)]);
    expect(over.patterns).toHaveLength(1);
    expect(over.patterns[0]?.test('/anything')).toBe(true);
    // One unusable pattern alone stands for "everything"; the others still run.
    const mixed = compileIgnorePaths(['^/admin/', '^/(']);
    expect(mixed.problems).toEqual([expect.stringMatching(/not a valid regular expression/)]);
    expect(mixed.patterns.map((p) => p.test('/blog/'))).toEqual([false, true]);
  });
});
