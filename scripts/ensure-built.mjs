// Run by `npm start` and `npm run relay` from a clone: builds dist/ when it is missing or older than any source,
// and does nothing otherwise (a start then costs no build). An installed package has no sources: nothing to do.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const SOURCES = ['server', 'shared', 'client', 'drizzle', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'vite.config.ts'];

/** The newest modification time under `path` (a file or a folder), 0 when it does not exist. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(stat.mtimeMs, ...readdirSync(path).map((name) => newest(join(path, name))));
}

if (!existsSync(join(root, 'server'))) process.exit(0);
const stamp = join(root, 'dist', '.built');
const builtAt = existsSync(stamp) ? statSync(stamp).mtimeMs : 0;
const changedAt = Math.max(...SOURCES.map((source) => newest(join(root, source))));
if (builtAt >= changedAt) {
  console.log('dist/ is up to date');
  process.exit(0);
}
console.log(builtAt === 0 ? 'dist/ is missing: building it' : 'sources changed since the last build: building dist/');
const result = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' });
process.exit(result.status ?? 1);
