// Run by `npm start` and `npm run relay` from a clone: builds dist/ when it is missing or older than any source,
// and does nothing otherwise (a start then costs no build). An installed package has no sources: nothing to do.
// Without the build tools (`npm ci --omit=dev`) it never builds: a copy that did not keep modification times
// makes the sources look newer, and the dist/ that came with it is what runs (with a warning), unless the
// migrations under drizzle/ differ from those dist/ was built beside (the server reads them from drizzle/, so old
// compiled code would meet a newer schema): that, and no dist/ at all, stop the start with a message.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { migrationsDigest, missingBuildTools } from './build-state.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['server', 'shared', 'client', 'drizzle', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'vite.config.ts'];
const BUILD = 'run `npm ci && npm run build`';

/** The newest modification time under `path` (a file or a folder), 0 when it does not exist. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}

/** The migrations digest dist/.built records (its `migrations …` line), or undefined: a build before it did. */
function builtMigrations(stamp) {
  return /^migrations (\S+)$/m.exec(readFileSync(stamp, 'utf8'))?.[1];
}

if (!existsSync(join(root, 'server'))) process.exit(0);
const stamp = join(root, 'dist', '.built');
const builtAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
const changedAt = Math.max(...SOURCES.map((source) => newest(join(root, source))));
if (builtAt >= changedAt) {
  console.log('dist/ is up to date');
  process.exit(0);
}
if (missingBuildTools(root).length > 0) {
  if (!existsSync(join(root, 'dist', 'server', 'main.js'))) {
    console.error(`dist/ is missing and the build tools are not installed (an install without devDependencies): ${BUILD} first`);
    process.exit(1);
  }
  // Modification times cannot tell a copy from a change; the migrations' content can.
  const recorded = existsSync(stamp) ? builtMigrations(stamp) : undefined;
  if (recorded !== migrationsDigest(root)) {
    console.error(
      recorded === undefined
        ? `dist/ does not record the migrations (drizzle/) it was built with, and the build tools are not installed: ${BUILD} before starting`
        : `the migrations (drizzle/) changed since dist/ was built, and the build tools are not installed: ${BUILD} before starting`,
    );
    process.exit(1);
  }
  console.warn(`warning: the sources look newer than dist/, but the build tools are not installed: starting the existing dist/ (${BUILD} to rebuild it)`);
  process.exit(0);
}
console.log(builtAt === 0 ? 'dist/ is missing: building it' : 'sources changed since the last build: building dist/');
const result = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
if (result.error) {
  console.error(`cannot build dist/: npm run build did not start (${result.error.message})`);
  process.exit(1);
}
process.exit(result.status ?? 1);
