// `npm run bench`: the collector against bare servers, relay efficiency, drain after an outage, memory and
// snippet size, in one run and one table (also written to bench/results/latest.md). Loopback only, bounded.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { snippetSize, SNIPPET_PATH } from '../scripts/snippet-size.ts';
import { startFakeGa, type FakeGa, type FakeGaMode } from '../harness/fake-ga.ts';
import { runLoad, type LoadResult } from './load.ts';
import { COLLECTOR_NODE_FLAGS, HIT_HEADERS, ROOT, collectorEnv, cpuTimeOf, hitBody, memoryOf, metricSum, prepareDatabase, readMetrics, startScript, until, type ServerProcess } from './support.ts';

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results', 'latest.md') },
  },
});
const DURATION_S = Number(options.duration);
const ROUNDS = Number(options.rounds);
const WARMUP_S = Number(options.warmup);
const CONNECTIONS = 50;
const TOKENS = [{ measurementId: 'G-BENCH1' }, { measurementId: 'G-BENCH2' }];
const DRAIN_HITS = 5_000; // × 2 tokens = 10,000 events
const RELAY_PAGE_VIEWS = 1_000;
const RELAY_RATE = 100; // page views a second: a busy site, far from the collector's limit

const TARGETS = {
  ratioToHono: 0.8,
  gaRequestsPer1000: 45,
  drainMs: 10_000,
  peakRssBytes: 200 * 1024 * 1024,
  snippetGzip: 600,
};
const PEERS = 'Plausible legacy 763 · Fathom Lite 1,277 · Umami 1,408–2,223 · GoatCounter 2,186';

const work = mkdtempSync(join(tmpdir(), 'analytics-bench-'));
const HIT = { headers: HIT_HEADERS, body: hitBody('/docs/getting-started') };

type ServerName = 'node:http' | 'bare Hono' | 'collector';

interface ServerRun {
  load: LoadResult;
  peakRss: number;
  /** CPU time the server process used per request during the measured run, in microseconds. */
  cpuPerRequest: number;
}

/**
 * Runs `fn` against a collector on a fresh database holding the two bench tokens, relaying to a fresh fake GA
 * that starts in `gaMode`; both are stopped afterwards, whatever happens.
 */
async function withCollector<T>(name: string, gaMode: FakeGaMode, fn: (collector: ServerProcess, ga: FakeGa) => Promise<T>): Promise<T> {
  const ga = await startFakeGa();
  try {
    ga.setMode(gaMode);
    const dbPath = join(work, `${name}.db`);
    await prepareDatabase(dbPath, TOKENS);
    const collector = await startScript('server/main.ts', collectorEnv(dbPath, ga.url), COLLECTOR_NODE_FLAGS);
    try {
      return await fn(collector, ga);
    } finally {
      await collector.stop();
    }
  } finally {
    await ga.close();
  }
}

/** Events in requests the fake GA accepted, per measurement id, and the requests themselves. */
function acceptedByToken(ga: FakeGa): Map<string, { requests: number; events: number }> {
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

/** One warm-up and one measured run of the same load against one server, in its own process. */
async function measureServer(name: ServerName, round: number): Promise<ServerRun> {
  const measure = async (server: ServerProcess): Promise<ServerRun> => {
    const url = `${server.url}/collect`;
    await runLoad({ url, connections: CONNECTIONS, durationS: WARMUP_S, ...HIT });
    const cpuBefore = cpuTimeOf(server.pid);
    const load = await runLoad({ url, connections: CONNECTIONS, durationS: DURATION_S, ...HIT });
    const cpuPerRequest = ((cpuTimeOf(server.pid) - cpuBefore) * 1000) / load.total;
    const { peak } = memoryOf(server.pid);
    if (load.non2xx > 0 || load.errors > 0) {
      throw new Error(`${name}: ${load.non2xx} answers other than 2xx and ${load.errors} errors under load`);
    }
    return { load, peakRss: peak, cpuPerRequest };
  };
  if (name === 'collector') return withCollector(`throughput-${round}`, { kind: 'ok' }, measure);
  const server = await startScript(name === 'node:http' ? 'bench/servers/bare-node.ts' : 'bench/servers/bare-hono.ts');
  try {
    return await measure(server);
  } finally {
    await server.stop();
  }
}

/** GA requests per 1,000 page views per token, for page views arriving at a steady `rate` a second. */
function measureRelay(): Promise<Map<string, number>> {
  return withCollector('relay', { kind: 'ok' }, async (collector, ga) => {
    const load = await runLoad({ url: `${collector.url}/collect`, connections: 10, amount: RELAY_PAGE_VIEWS, rate: RELAY_RATE, ...HIT });
    if (load.non2xx > 0 || load.errors > 0) throw new Error(`relay run: ${load.non2xx} non-2xx, ${load.errors} errors`);
    const expected = RELAY_PAGE_VIEWS * TOKENS.length;
    if (!(await until(() => acceptedEvents(ga) >= expected, 30_000))) {
      throw new Error(`relay run: GA took ${acceptedEvents(ga)} of ${expected} events within 30 s`);
    }
    const perToken = new Map<string, number>();
    for (const [id, entry] of acceptedByToken(ga)) perToken.set(id, (entry.requests * 1000) / entry.events);
    return perToken;
  });
}

interface DrainRun {
  /** From GA coming back to the outbox being empty. */
  totalMs: number;
  /** Of which: waiting for the relay's back-off to run out. */
  backoffMs: number;
  events: number;
}

/** 10,000 events queued while GA answers 503; then GA comes back: how long until the outbox is empty. */
function measureDrain(): Promise<DrainRun> {
  return withCollector('drain', { kind: 'status', status: 503 }, async (collector, ga) => {
    const load = await runLoad({ url: `${collector.url}/collect`, connections: CONNECTIONS, amount: DRAIN_HITS, ...HIT });
    if (load.non2xx > 0 || load.errors > 0) throw new Error(`drain run: ${load.non2xx} non-2xx, ${load.errors} errors`);
    const events = DRAIN_HITS * TOKENS.length;
    const depth = async () => metricSum(await readMetrics(collector.url), 'analytics_outbox_depth');
    if ((await depth()) !== events) throw new Error(`drain run: outbox holds ${await depth()}, not ${events}`);
    const before = ga.requests.length;
    const back = Date.now();
    ga.setMode({ kind: 'ok' });
    let firstAt = 0;
    const drained = await until(
      async () => {
        if (firstAt === 0 && ga.requests.slice(before).some((r) => r.answer === 204)) firstAt = Date.now();
        return (await depth()) === 0;
      },
      120_000,
      20,
    );
    const end = Date.now();
    if (!drained) throw new Error(`drain run: outbox not empty 120 s after GA came back`);
    if (acceptedEvents(ga) !== events) throw new Error(`drain run: GA took ${acceptedEvents(ga)} events, not ${events}`);
    return { totalMs: end - back, backoffMs: (firstAt || end) - back, events };
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const verdict = (ok: boolean) => (ok ? 'pass' : '**FAIL**');

async function main(): Promise<void> {
  const startedAt = new Date();
  const load1 = loadavg()[0] ?? 0;
  console.log(`benchmark: ${ROUNDS} round(s) of ${DURATION_S} s per server, ${CONNECTIONS} connections; load average ${load1.toFixed(2)}`);

  const runs: Record<ServerName, ServerRun[]> = { 'node:http': [], 'bare Hono': [], collector: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    // Interleaved, so a burst of noise from elsewhere on the machine hurts every server alike.
    for (const name of ['node:http', 'bare Hono', 'collector'] as const) {
      const run = await measureServer(name, round);
      runs[name].push(run);
      console.log(
        `  round ${round} ${name}: ${int(run.load.requestsPerSecond)} req/s, p50 ${run.load.p50} ms, p99 ${run.load.p99} ms, ${int(run.cpuPerRequest)} µs CPU a request`,
      );
    }
  }
  const summary = (name: ServerName) => ({
    rps: median(runs[name].map((r) => r.load.requestsPerSecond)),
    p50: median(runs[name].map((r) => r.load.p50)),
    p99: median(runs[name].map((r) => r.load.p99)),
    peakRss: Math.max(...runs[name].map((r) => r.peakRss)),
    cpu: median(runs[name].map((r) => r.cpuPerRequest)),
  });
  const node = summary('node:http');
  const hono = summary('bare Hono');
  const collector = summary('collector');

  console.log('  relay efficiency…');
  const relay = await measureRelay();
  console.log('  drain after an outage…');
  const drain = await measureDrain();

  if (!existsSync(SNIPPET_PATH)) spawnSync('npx', ['vite', 'build'], { cwd: ROOT, stdio: 'ignore' });
  const snippet = existsSync(SNIPPET_PATH) ? snippetSize() : undefined;

  const ratio = collector.rps / hono.rps;
  const worstRelay = Math.max(...relay.values());
  const rows: string[][] = [
    ['figure', 'measured', 'target', 'result'],
    ...(['node:http', 'bare Hono', 'collector'] as const).map((name) => {
      const s = summary(name);
      return [`${name}: POST /collect`, `${int(s.rps)} req/s · p50 ${s.p50} ms · p99 ${s.p99} ms · ${int(s.cpu)} µs CPU a request · peak RSS ${mb(s.peakRss)}`, '', ''];
    }),
    ['collector ÷ bare Hono (throughput)', ratio.toFixed(2), `≥ ${TARGETS.ratioToHono}`, verdict(ratio >= TARGETS.ratioToHono)],
    ['collector ÷ node:http (throughput)', (collector.rps / node.rps).toFixed(2), '', ''],
    [
      `GA requests per 1,000 page views per token (${RELAY_PAGE_VIEWS} at ${RELAY_RATE}/s)`,
      [...relay].map(([id, n]) => `${id} ${n.toFixed(1)}`).join(' · '),
      `≤ ${TARGETS.gaRequestsPer1000}`,
      verdict(worstRelay <= TARGETS.gaRequestsPer1000),
    ],
    [
      `drain: ${int(drain.events)} events queued while GA was down`,
      `${(drain.totalMs / 1000).toFixed(1)} s (${(drain.backoffMs / 1000).toFixed(1)} s back-off, then ${((drain.totalMs - drain.backoffMs) / 1000).toFixed(1)} s delivering)`,
      `< ${TARGETS.drainMs / 1000} s`,
      verdict(drain.totalMs < TARGETS.drainMs),
    ],
    ['collector peak RSS under load', mb(collector.peakRss), `< ${mb(TARGETS.peakRssBytes)}`, verdict(collector.peakRss < TARGETS.peakRssBytes)],
    snippet
      ? [
          'snippet dist/analytics.js',
          `${int(snippet.minified)} B minified · ${int(snippet.gzipped)} B gzipped`,
          `≤ ${TARGETS.snippetGzip} B gzipped`,
          verdict(snippet.gzipped <= TARGETS.snippetGzip),
        ]
      : ['snippet dist/analytics.js', 'not built (npm run build)', `≤ ${TARGETS.snippetGzip} B gzipped`, verdict(false)],
    ['peers, gzipped', PEERS, '', ''],
  ];
  const failed = rows.some((row) => row[3] === verdict(false));
  const cpu = cpus();
  const heading =
    `${startedAt.toISOString().slice(0, 10)} · ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}) · Node ${process.version} · ` +
    `load average ${load1.toFixed(2)} at start · ${CONNECTIONS} connections, ${DURATION_S} s per run, median of ${ROUNDS}`;
  const table = rows.map((row, i) => `| ${row.join(' | ')} |${i === 0 ? `\n|${row.map(() => ' --- ').join('|')}|` : ''}`).join('\n');
  const report = `${heading}\n\n${table}\n`;
  console.log(`\n${report}`);
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, report);
  console.log(`written to ${options.out}`);
  if (failed) process.exitCode = 1;
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
