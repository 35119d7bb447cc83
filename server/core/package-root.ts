import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder of this package's package.json, found from this file: `server/core/` when run from the
 * TypeScript sources, `dist/server/core/` when run compiled (from a clone or an installed package).
 */
function findPackageRoot(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(folder, 'package.json'))) {
    const parent = dirname(folder);
    if (parent === folder) throw new Error('cannot find the package root of ga4-relay-analytics');
    folder = parent;
  }
  return folder;
}

/** Where the package lives; the built snippet, the migrations and package.json are found from here. */
export const PACKAGE_ROOT = findPackageRoot();

/** A path inside the package, e.g. `packagePath('drizzle', 'sqlite')`. */
export function packagePath(...parts: string[]): string {
  return join(PACKAGE_ROOT, ...parts);
}
