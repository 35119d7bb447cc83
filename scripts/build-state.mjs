// What scripts/build.mjs and scripts/ensure-built.mjs (run by `npm start`) agree on: the tools a build needs, and
// the migrations' digest dist/.built records. Plain JavaScript, so that it runs before anything is compiled.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The build's tools, devDependencies all: an `npm ci --omit=dev` install has none. */
export function buildTools(root) {
  return { vite: join(root, 'node_modules', '.bin', 'vite'), tsc: join(root, 'node_modules', '.bin', 'tsc'), tsx: join(root, 'node_modules', 'tsx') };
}

/** The names of the build's tools that are not installed under `root`. */
export function missingBuildTools(root) {
  return Object.entries(buildTools(root))
    .filter(([, path]) => !existsSync(path))
    .map(([name]) => name);
}

/** A digest of every file under `<root>/drizzle`: its path and content, line endings as LF. */
export function migrationsDigest(root) {
  const hash = createHash('sha256');
  const walk = (folder) => {
    if (!existsSync(join(root, folder))) return;
    const entries = readdirSync(join(root, folder), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = `${folder}/${entry.name}`;
      if (entry.isDirectory()) walk(path);
      else hash.update(`${path}\0${readFileSync(join(root, path), 'utf8').replace(/\r\n/g, '\n')}\0`);
    }
  };
  walk('drizzle');
  return `sha256:${hash.digest('hex')}`;
}
