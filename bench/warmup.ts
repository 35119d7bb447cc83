// `node --import tsx bench/warmup.ts`: how CPU a hit settles after a start, for bare Hono and the collector. Each
// is started once and loaded in consecutive windows (50 connections, the benchmark's hit); each window's CPU a hit is
// printed. It shows how long `npm run bench` must warm a server up before what it measures is the steady state.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeGa } from '../harness/fake-ga.ts';
import { runLoad } from './load.ts';
import { COLLECTOR, CONNECTIONS, HIT, TOKENS } from './measure.ts';
import { COLLECTOR_NODE_FLAGS, ROOT, collectorEnv, cpuTimeOf, prepareDatabase, startScript } from './support.ts';

/** Seconds of each window, in order from the start. */
const WINDOWS = [3, 3, 4, 5, 5, 10, 10];

async function curve(script: string, env: Record<string, string>, flags: string[]): Promise<string> {
  const server = await startScript(script, env, flags);
  try {
    let elapsed = 0;
    const points: string[] = [];
    for (const seconds of WINDOWS) {
      const before = cpuTimeOf(server.pid);
      const load = await runLoad({ url: `${server.url}/collect`, connections: CONNECTIONS, durationS: seconds, ...HIT });
      const perHit = ((cpuTimeOf(server.pid) - before) * 1000) / load.total;
      points.push(`${elapsed}–${(elapsed += seconds)} s: ${Math.round(perHit)}`);
    }
    return points.join(' · ');
  } finally {
    await server.stop();
  }
}

// The collector measured is the compiled one, as npm start runs it: built first if missing or stale.
if (spawnSync(process.execPath, ['scripts/ensure-built.mjs'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) throw new Error('the build failed');
const ga = await startFakeGa();
const work = mkdtempSync(join(tmpdir(), 'analytics-warmup-'));
try {
  const database = join(work, 'warmup.db');
  await prepareDatabase(database, TOKENS);
  console.log(`µs CPU a hit, window by window after the start (${CONNECTIONS} connections)`);
  console.log(`bare Hono: ${await curve('bench/servers/bare-hono.ts', {}, [])}`);
  console.log(`collector: ${await curve(COLLECTOR, collectorEnv(database, ga.url), COLLECTOR_NODE_FLAGS)}`);
} finally {
  await ga.close();
  rmSync(work, { recursive: true, force: true });
}
