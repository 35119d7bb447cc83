// `npm run build`: the snippet (Vite) and the server and library (tsc) into dist/, then the snippet's size
// check. Plain JavaScript, so that it runs before anything is compiled.
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);

function run(command, args) {
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) process.exit(result.status ?? 1);
}

rmSync(join(root, 'dist'), { recursive: true, force: true });
run(bin('vite'), ['build', '--logLevel', 'warn']);
run(bin('tsc'), ['-p', 'tsconfig.build.json']);
run(process.execPath, ['--import', 'tsx', 'scripts/snippet-size.ts']);
// What `npm start` compares the sources with (scripts/ensure-built.mjs).
writeFileSync(join(root, 'dist', '.built'), `${new Date().toISOString()}\n`);
console.log('built dist/: the snippet, the server and the library');
