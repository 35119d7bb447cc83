// `npm run build`: the snippet (Vite) and the server and library (tsc) into dist/, then the snippet's size
// check. Plain JavaScript, so that it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildTools, migrationsDigest, missingBuildTools } from './build-state.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TOOLS = buildTools(root);

function fail(message) {
  console.error(message);
  process.exit(1);
}

function run(name, command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.error) fail(`build failed: cannot run ${name} (${result.error.message})`);
  if (result.signal) fail(`build failed: ${name} was killed by ${result.signal}`);
  if (result.status !== 0) process.exit(result.status ?? 1);
}

// Checked before anything is built: without the tools there is nothing to do but say so.
const missing = missingBuildTools(root);
if (missing.length > 0) {
  fail(`cannot build dist/: the build tools are not installed (${missing.join(', ')}: devDependencies); run \`npm ci\` first. dist/ is left as it was`);
}
// Taken before the build: a migration added while it runs then reads as a change.
const migrations = migrationsDigest(root);
// Built beside dist/, which takes its place only once everything is built: a build that fails (a type error, the
// snippet over its budget) leaves the dist/ there was, and nothing half-built.
const dist = join(root, 'dist');
const next = join(root, 'dist.next');
let built = false;
process.on('exit', () => {
  if (!built) rmSync(next, { recursive: true, force: true });
});
rmSync(next, { recursive: true, force: true });
run('vite', TOOLS.vite, ['build', '--logLevel', 'warn', '--outDir', 'dist.next']);
run('tsc', TOOLS.tsc, ['-p', 'tsconfig.build.json', '--outDir', 'dist.next']);
run('the snippet size check', process.execPath, ['--import', 'tsx', 'scripts/snippet-size.ts', join(next, 'analytics.js')]);
// What `npm start` compares the sources with (scripts/ensure-built.mjs): the file's modification time, and,
// without the build tools, the migrations dist/ was built beside. The time stays the first line.
writeFileSync(join(next, '.built'), `${new Date().toISOString()}\nmigrations ${migrations}\n`);
rmSync(dist, { recursive: true, force: true });
renameSync(next, dist);
built = true;
console.log('built dist/: the snippet, the server and the library');
