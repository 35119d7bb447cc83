import { describe, expect, it } from 'vitest';
import { compilePathPattern, pathPatternProblem } from '../../server/tokens/ignore-paths.ts';

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
});
