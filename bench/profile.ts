// `node --import tsx bench/profile.ts [seconds]`: the compiled collector under the benchmark's load with
// `--cpu-prof`, then where each thread's time went (the main thread answering HTTP, the delivery thread holding
// the store, the relay's thread), by function (self time) and by package or project file. The .cpuprofile files are
// kept for Chrome DevTools. Samples are wall-clock: a thread waiting for a disk sync counts where it waits.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { startFakeGa } from '../harness/fake-ga.ts';
import { runLoad } from './load.ts';
import { COLLECTOR, HIT, TOKENS } from './measure.ts';
import { COLLECTOR_NODE_FLAGS, ROOT, collectorEnv, prepareDatabase, startScript } from './support.ts';

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
await prepareDatabase(dbPath, TOKENS);
const ga = await startFakeGa();
const collector = await startScript(
  COLLECTOR,
  collectorEnv(dbPath, ga.url),
  [...COLLECTOR_NODE_FLAGS, '--cpu-prof', `--cpu-prof-dir=${dir}`],
);
const load = await runLoad({ url: `${collector.url}/collect`, connections: 50, durationS: seconds, ...HIT });
console.log(`${Math.round(load.requestsPerSecond)} req/s, p50 ${load.p50} ms, p99 ${load.p99} ms`);
await collector.stop('SIGINT');
await ga.close();
// One profile per thread: CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile, thread 0 the main one.
const files = readdirSync(dir)
  .filter((name) => name.endsWith('.cpuprofile'))
  .sort();
if (files.length === 0) throw new Error(`no profile written in ${dir}`);
for (const file of files) {
  const thread = Number(file.split('.').at(-3));
  // Node numbers threads as they start: the delivery thread first, then the relay's, which it starts.
  const name = ['main thread', 'thread 1 (the delivery thread)', 'thread 2 (the relay thread)'][thread] ?? `thread ${thread} (started again)`;
  console.log(`\n=== ${name}: ${join(dir, file)}\n`);
  console.log(summarize(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile));
}
