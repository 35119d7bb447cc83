// The measurements `npm run bench` is made of: a server under load, the relay's batching, a drain after an
// outage, a restart. Each starts what it measures as its own process and stops it, whatever happens.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { startFakeGa, type FakeGa, type FakeGaMode } from '../harness/fake-ga.ts';
import { runLoad, type LoadResult } from './load.ts';
import { COLLECTOR_NODE_FLAGS, HIT_HEADERS, collectorEnv, cpuTimeIn, cpuTimeOf, hitBody, memoryOf, metricSum, prepareDatabase, readMetrics, sleep, startScript, until, type ServerProcess } from './support.ts';

/** The compiled server, as `npm start` runs it. */
export const COLLECTOR = 'dist/server/main.js';
export const CONNECTIONS = 50;
export const TOKENS = [{ measurementId: 'G-BENCH1' }, { measurementId: 'G-BENCH2' }];
export const HIT = { headers: HIT_HEADERS, body: hitBody('/docs/getting-started') };

/** CPU time of each thread of a process so far, in milliseconds, by thread id (`/proc/<pid>/task`). */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), cpuTimeIn(`/proc/${pid}/task/${tid}/stat`));
    } catch {
      // A thread that ended meanwhile.
    }
  }
  return out;
}

/**
 * CPU a hit by thread: the main thread (HTTP), the delivery thread (the store's connection and the group commits),
 * the relay's thread, and the rest (V8's and libuv's helpers).
 */
export interface ThreadSplit {
  main: number;
  delivery: number;
  relay: number;
  other: number;
}

/** A thread busier than this (µs a hit) is one of the collector's own; V8's and libuv's helpers stay below. */
const OWN_THREAD_US = 3;

function splitOf(pid: number, before: Map<number, number>, after: Map<number, number>, hits: number): ThreadSplit {
  const perHit = (ms: number) => (ms * 1000) / hits;
  const deltas = [...after].map(([tid, ms]) => [tid, perHit(ms - (before.get(tid) ?? 0))] as const);
  const main = deltas.find(([tid]) => tid === pid)?.[1] ?? 0;
  const others = deltas.filter(([tid]) => tid !== pid);
  // The busy threads in the order they were started (Linux numbers threads as they start): the delivery thread
  // first, then the relay's, which the delivery thread starts.
  const own = others.filter(([, us]) => us >= OWN_THREAD_US).sort(([a], [b]) => a - b);
  const delivery = own[0]?.[1] ?? 0;
  const relay = own[1]?.[1] ?? 0;
  const rest = others.reduce((sum, [, us]) => sum + us, 0) - delivery - relay;
  return { main, delivery, relay, other: rest };
}

/** One measured run of the load against one or more processes serving the same thing. */
export interface ServerRun {
  load: LoadResult;
  peakRss: number;
  /** CPU time of the server processes during the measured run, per request answered, in microseconds. */
  cpuPerRequest: number;
  /** The same, by thread (one process only). */
  threads?: ThreadSplit;
  /** CPU of a database server's processes during the run, per request, in microseconds. */
  databaseCpuPerRequest?: number;
}

/** Sums two load runs that ran side by side (one load tool each). */
function together(a: LoadResult, b: LoadResult): LoadResult {
  return {
    requestsPerSecond: a.requestsPerSecond + b.requestsPerSecond,
    total: a.total + b.total,
    p50: Math.max(a.p50, b.p50),
    p99: Math.max(a.p99, b.p99),
    non2xx: a.non2xx + b.non2xx,
    errors: a.errors + b.errors,
    timeouts: a.timeouts + b.timeouts,
    durationS: Math.max(a.durationS, b.durationS),
  };
}

/**
 * A warm-up, then the measured run, of {@link CONNECTIONS} connections split over `servers`, each hit sent as
 * the snippet sends it. `databasePids` are counted apart (a PostgreSQL server's processes).
 */
export async function loadServers(servers: ServerProcess[], warmupS: number, durationS: number, databasePids: () => number[] = () => []): Promise<ServerRun> {
  const connections = Math.floor(CONNECTIONS / servers.length);
  const run = async (seconds: number) =>
    (await Promise.all(servers.map((s) => runLoad({ url: `${s.url}/collect`, connections, durationS: seconds, ...HIT })))).reduce(together);
  await run(warmupS);
  const cpu = () => servers.reduce((sum, s) => sum + cpuTimeOf(s.pid), 0);
  const dbCpu = () => databasePids().reduce((sum, pid) => sum + safeCpu(pid), 0);
  const threadsBefore = servers.length === 1 ? threadCpu(servers[0]!.pid) : undefined;
  const [cpuBefore, dbBefore] = [cpu(), dbCpu()];
  const load = await run(durationS);
  const [cpuAfter, dbAfter] = [cpu(), dbCpu()];
  if (load.non2xx > 0 || load.errors > 0) throw new Error(`${load.non2xx} answers other than 2xx and ${load.errors} errors under load`);
  const perRequest = (ms: number) => (ms * 1000) / load.total;
  return {
    load,
    peakRss: Math.max(...servers.map((s) => memoryOf(s.pid).peak)),
    cpuPerRequest: perRequest(cpuAfter - cpuBefore),
    threads: threadsBefore ? splitOf(servers[0]!.pid, threadsBefore, threadCpu(servers[0]!.pid), load.total) : undefined,
    databaseCpuPerRequest: databasePids().length > 0 ? perRequest(dbAfter - dbBefore) : undefined,
  };
}

function safeCpu(pid: number): number {
  try {
    return cpuTimeOf(pid);
  } catch {
    return 0; // a backend that ended meanwhile
  }
}

/** The processes of a PostgreSQL server whose data directory is `dir`: the postmaster and its children. */
export function postgresPids(dir: string): number[] {
  const pids: Array<{ pid: number; ppid: number; cmd: string }> = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      pids.push({ pid: Number(entry), ppid, cmd });
    } catch {
      // gone meanwhile
    }
  }
  const postmaster = pids.find((p) => p.cmd.includes(dir));
  if (!postmaster) return [];
  return [postmaster.pid, ...pids.filter((p) => p.ppid === postmaster.pid).map((p) => p.pid)];
}

/**
 * Runs `fn` against collectors (one per `env`) on a database holding the bench tokens, relaying to a fresh fake
 * GA that starts in `gaMode`; all are stopped afterwards, whatever happens. `build` runs another compiled
 * collector, or Node flags other than `npm start`'s.
 */
export async function withCollectors<T>(
  database: string,
  gaMode: FakeGaMode,
  envs: Array<Record<string, string>>,
  fn: (collectors: ServerProcess[], ga: FakeGa) => Promise<T>,
  build: { script?: string; nodeFlags?: string[] } = {},
): Promise<T> {
  const ga = await startFakeGa();
  const collectors: ServerProcess[] = [];
  try {
    ga.setMode(gaMode);
    await prepareDatabase(database, TOKENS);
    const { script = COLLECTOR, nodeFlags = COLLECTOR_NODE_FLAGS } = build;
    for (const env of envs) collectors.push(await startScript(script, { ...collectorEnv(database, ga.url), ...env }, nodeFlags));
    return await fn(collectors, ga);
  } finally {
    await Promise.all(collectors.map((c) => c.stop()));
    await ga.close();
  }
}

/** Events in requests the fake GA accepted, and the requests, per measurement id. */
export function acceptedByToken(ga: FakeGa): Map<string, { requests: number; events: number }> {
  const out = new Map<string, { requests: number; events: number }>();
  for (const request of ga.accepted()) {
    const entry = out.get(request.measurementId ?? '') ?? { requests: 0, events: 0 };
    entry.requests += 1;
    entry.events += request.body?.events?.length ?? 0;
    out.set(request.measurementId ?? '', entry);
  }
  return out;
}

function acceptedEvents(ga: FakeGa): number {
  let n = 0;
  for (const entry of acceptedByToken(ga).values()) n += entry.events;
  return n;
}

/** How page views arrive in a batching run. */
export interface Arrival {
  pageViews: number;
  /** Hits a second, all connections together. */
  rate: number;
  connections: number;
}

/** GA requests per 1,000 page views per token, for page views arriving as `arrival` says. */
export function measureBatching(database: string, arrival: Arrival): Promise<Map<string, number>> {
  return withCollectors(database, { kind: 'ok' }, [{}], async ([collector], ga) => {
    const load = await runLoad({ url: `${collector!.url}/collect`, connections: arrival.connections, amount: arrival.pageViews, rate: arrival.rate, ...HIT });
    if (load.non2xx > 0 || load.errors > 0) throw new Error(`batching run: ${load.non2xx} non-2xx, ${load.errors} errors`);
    const expected = arrival.pageViews * TOKENS.length;
    if (!(await until(() => acceptedEvents(ga) >= expected, 30_000))) {
      throw new Error(`batching run: GA took ${acceptedEvents(ga)} of ${expected} events within 30 s`);
    }
    const perToken = new Map<string, number>();
    for (const [id, entry] of acceptedByToken(ga)) perToken.set(id, (entry.requests * 1000) / entry.events);
    return perToken;
  });
}

export interface DrainRun {
  /** From GA coming back to the outbox being empty. */
  totalMs: number;
  /** Of which: waiting for the relay's back-off to run out. */
  backoffMs: number;
  events: number;
}

/** `hits` hits (two events each) queued while GA answers 503; then GA comes back: how long until the outbox is empty. */
export function measureDrain(database: string, hits: number): Promise<DrainRun> {
  return withCollectors(database, { kind: 'status', status: 503 }, [{}], async ([collector], ga) => {
    const url = collector!.url;
    const load = await runLoad({ url: `${url}/collect`, connections: CONNECTIONS, amount: hits, ...HIT });
    if (load.non2xx > 0 || load.errors > 0) throw new Error(`drain run: ${load.non2xx} non-2xx, ${load.errors} errors`);
    const events = hits * TOKENS.length;
    const depth = async () => metricSum(await readMetrics(url), 'analytics_outbox_depth');
    if ((await depth()) !== events) throw new Error(`drain run: outbox holds ${await depth()}, not ${events}`);
    const before = ga.requests.length;
    const back = Date.now();
    ga.setMode({ kind: 'ok' });
    let firstAt = 0;
    // Watched at GA's side: asking the collector for its depth every few milliseconds would slow what it measures.
    const drained = await until(
      () => {
        if (firstAt === 0 && ga.requests.slice(before).some((r) => r.answer === 204)) firstAt = Date.now();
        return acceptedEvents(ga) >= events;
      },
      120_000,
      10,
    );
    const end = Date.now();
    if (!drained) throw new Error('drain run: outbox not empty 120 s after GA came back');
    if ((await depth()) !== 0) throw new Error(`drain run: GA took every event but the outbox still holds ${await depth()}`);
    return { totalMs: end - back, backoffMs: (firstAt || end) - back, events };
  });
}

/** From starting the compiled server on an existing database to its `/healthz` answering 200, `times` times (ms). */
export async function measureStart(database: string, times: number): Promise<number[]> {
  const ga = await startFakeGa();
  try {
    await prepareDatabase(database, TOKENS);
    const took: number[] = [];
    for (let i = 0; i < times; i++) {
      const started = performance.now();
      const server = await startScript(COLLECTOR, collectorEnv(database, ga.url), COLLECTOR_NODE_FLAGS);
      try {
        while ((await fetch(`${server.url}/healthz`).catch(() => undefined))?.status !== 200) await sleep(5);
        took.push(performance.now() - started);
      } finally {
        await server.stop();
      }
    }
    return took;
  } finally {
    await ga.close();
  }
}

/** A SQLite file for one measurement. */
export const sqliteFile = (work: string, name: string) => join(work, `${name}.db`);
