// Prints the built snippet's size and fails when it outgrows its budget: size is a feature.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** The most the snippet may weigh gzipped; the smallest comparable peer (Plausible's legacy script) is 763. */
export const SNIPPET_GZIP_BUDGET = 600;

/** The default build output, resolved from this file so the script works from any directory. */
export const SNIPPET_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'analytics.js');

/** Minified and gzipped (level 9) byte sizes of a built snippet, e.g. `snippetSize('dist/analytics.js')`. */
export function snippetSize(path: string = SNIPPET_PATH): { minified: number; gzipped: number } {
  const code = readFileSync(path);
  return { minified: code.length, gzipped: gzipSync(code, { level: 9 }).length };
}

// `node --import tsx scripts/snippet-size.ts [path]`: the build passes the snippet it has just built.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { minified, gzipped } = snippetSize(process.argv[2] ?? SNIPPET_PATH);
  console.log(`dist/analytics.js: ${minified} B minified, ${gzipped} B gzipped (budget ${SNIPPET_GZIP_BUDGET})`);
  if (gzipped > SNIPPET_GZIP_BUDGET) {
    console.error(`snippet is ${gzipped - SNIPPET_GZIP_BUDGET} B over its gzipped budget`);
    process.exitCode = 1;
  }
}
