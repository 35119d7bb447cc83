// `node --import tsx bench/profile.ts [seconds]`: the collector under the benchmark's load with `--cpu-prof`,
// then where its CPU time went, by function (self time) and by package or project file (inclusive of callees
// outside the project). The .cpuprofile is kept for Chrome DevTools.
import { mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startFakeGa } from '../harness/fake-ga.ts';
import { runLoad } from './load.ts';
import { COLLECTOR_NODE_FLAGS, HIT_HEADERS, ROOT, collectorEnv, hitBody, prepareDatabase, startScript } from './support.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: a package name, a project file, or node's own internals. */
function owner(url: string): string {
  if (url === '') return '(native / idle / gc)';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  if (url.startsWith('node:')) return url;
  if (url.startsWith('file://')) return relative(ROOT, new URL(url).pathname);
  return url;
}

/** Prints the top entries of self time by function and by owner. */
function summarize(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfMs.set(id, (selfMs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const total = [...selfMs.values()].reduce((a, b) => a + b, 0);
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const [id, ms] of selfMs) {
    const frame = byId.get(id)?.callFrame;
    if (!frame) continue;
    const where = owner(frame.url);
    const key = `${frame.functionName || '(anonymous)'}  ${where}:${frame.lineNumber + 1}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + ms);
    byOwner.set(where, (byOwner.get(where) ?? 0) + ms);
  }
  const list = (map: Map<string, number>) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([key, ms]) => `${((100 * ms) / total).toFixed(1).padStart(5)}%  ${key}`)
      .join('\n');
  return `self time by owner:\n${list(byOwner)}\n\nself time by function:\n${list(byFunction)}`;
}

const seconds = Number(process.argv[2] ?? '10');
const dir = mkdtempSync(join(tmpdir(), 'analytics-profile-'));
const dbPath = join(dir, 'profile.db');
await prepareDatabase(dbPath, [{ measurementId: 'G-BENCH1' }, { measurementId: 'G-BENCH2' }]);
const ga = await startFakeGa();
const collector = await startScript(
  'server/main.ts',
  collectorEnv(dbPath, ga.url),
  [...COLLECTOR_NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`],
);
const load = await runLoad({ url: `${collector.url}/collect`, connections: 50, durationS: seconds, headers: HIT_HEADERS, body: hitBody('/docs/getting-started') });
console.log(`${Math.round(load.requestsPerSecond)} req/s, p50 ${load.p50} ms, p99 ${load.p99} ms`);
await collector.stop('SIGINT');
await ga.close();
// One profile per thread (tsx runs its loader in a second one): the main thread's is the largest.
const file = readdirSync(dir)
  .filter((name) => name.endsWith('.cpuprofile'))
  .sort((a, b) => statSync(join(dir, b)).size - statSync(join(dir, a)).size)[0];
if (!file) throw new Error(`no profile written in ${dir}`);
console.log(summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile));
console.log(`\nprofile: ${join(dir, file)}`);
