// The migrations' digest: what dist/.built records at build time (scripts/build.mjs) and what `npm start` without
// the build tools compares it with (scripts/ensure-built.mjs). Plain JavaScript, so that it runs before anything
// is compiled.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

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
