import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SNIPPET_GZIP_BUDGET, SNIPPET_PATH, snippetSize } from '../../scripts/snippet-size.ts';

// Reads the build output: `npm test` runs `npm run build` first.
describe('the built snippet (dist/analytics.js)', () => {
  it('has been built', () => {
    expect(existsSync(SNIPPET_PATH), 'run `npm run build` first').toBe(true);
  });

  it(`is at most ${SNIPPET_GZIP_BUDGET} bytes gzipped`, () => {
    const { minified, gzipped } = snippetSize(SNIPPET_PATH);
    expect(gzipped).toBeGreaterThan(0);
    expect(gzipped).toBeLessThan(minified);
    expect(gzipped).toBeLessThanOrEqual(SNIPPET_GZIP_BUDGET);
  });

  it('is one self-contained classic script: no imports, exports or globals of its own', () => {
    const code = readFileSync(SNIPPET_PATH, 'utf8');
    expect(code).not.toMatch(/\bimport\b|\bexport\b|\brequire\(/);
    // An IIFE that names nothing on window: the lib `name` only applies when the entry exports.
    expect(code).not.toMatch(/^\s*var analytics\b/);
    expect(code).not.toContain('sourceMappingURL');
  });
});
