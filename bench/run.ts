// `npm run bench`: the compiled collector against bare servers (CPU a hit, throughput, p99), the collector on
// PostgreSQL (one, then two processes), the relay's batching at a steady pace and in a burst, a drain after an
// outage, start-up time, memory and the snippet's size, in one run and one report (also written to
// bench/results/latest.md). Loopback only, bounded in count and time. Exits 1 if a target is missed.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { freshPostgresUrl, startPostgres, type PostgresServer } from '../harness/postgres-server.ts';
import { snippetSize, SNIPPET_PATH } from '../scripts/snippet-size.ts';
import { COLLECTOR, CONNECTIONS, loadServers, measureBatching, measureDrain, measureStart, postgresPids, sqliteFile, withCollectors, type ServerRun, type ThreadSplit } from './measure.ts';
import { COLLECTOR_NODE_FLAGS, ROOT, startScript } from './support.ts';

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    // Long enough for V8 to finish optimizing: the relay's functions run a few hundred times a second, and the
    // collector's CPU a hit settles only 6–10 s after its start (see BENCHMARKS.md). The same for every server.
    warmup: { type: 'string', default: '10' },
    out: { type: 'string', default: join(ROOT, 'bench', 'results', 'latest.md') },
  },
});
const DURATION_S = Number(options.duration);
const ROUNDS = Number(options.rounds);
const WARMUP_S = Number(options.warmup);
const DRAIN_HITS = 5_000; // × 2 tokens = 10,000 events
const STEADY = { pageViews: 1_000, rate: 100, connections: 10 };
const BURST = { pageViews: 1_000, rate: 1_000, connections: 20 };
const STARTS = 5;

const TARGETS = {
  cpuToHono: 3,
  throughputToHono: 0.3,
  p99Ms: 10,
  gaRequestsPer1000: 42,
  drainMs: 10_000,
  peakRssBytes: 200 * 1024 * 1024,
  startMs: 500,
  snippetGzip: 600,
};
const PEERS = 'Plausible legacy 763 · Fathom Lite 1,277 · Umami 1,408–2,223 · GoatCounter 2,186';

const work = mkdtempSync(join(tmpdir(), 'analytics-bench-'));

/** The servers measured side by side each round; "bare Hono, same flags" runs with the collector's Node flags. */
type Rounded = 'node:http' | 'bare Hono' | 'bare Hono, same flags' | 'collector';

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(0)} MB`;
const verdict = (ok: boolean) => (ok ? 'pass' : '**FAIL**');
const describe = (run: { load: { requestsPerSecond: number; p50: number; p99: number }; cpuPerRequest: number }) =>
  `${int(run.load.requestsPerSecond)} req/s · p50 ${run.load.p50} ms · p99 ${run.load.p99} ms · ${int(run.cpuPerRequest)} µs CPU a hit`;

/** One round's run of one of the servers measured side by side. */
async function measureRounded(name: Rounded, round: number): Promise<ServerRun> {
  if (name === 'collector') {
    return withCollectors(sqliteFile(work, `throughput-${round}`), { kind: 'ok' }, [{}], (servers) => loadServers(servers, WARMUP_S, DURATION_S));
  }
  const server = await startScript(name === 'node:http' ? 'bench/servers/bare-node.ts' : 'bench/servers/bare-hono.ts', {}, name === 'bare Hono, same flags' ? COLLECTOR_NODE_FLAGS : []);
  try {
    return await loadServers([server], WARMUP_S, DURATION_S);
  } finally {
    await server.stop();
  }
}

/** The collector on PostgreSQL: `processes` collectors on one database, the load split between them. */
async function measurePostgres(server: PostgresServer, processes: number): Promise<ServerRun> {
  const url = await freshPostgresUrl(server.url);
  const envs = Array.from({ length: processes }, () => ({}));
  return withCollectors(url, { kind: 'ok' }, envs, (collectors) => loadServers(collectors, WARMUP_S, DURATION_S, () => postgresPids(server.dir)));
}

function table(rows: string[][]): string {
  return rows.map((row, i) => `| ${row.join(' | ')} |${i === 0 ? `\n|${row.map(() => ' --- ').join('|')}|` : ''}`).join('\n');
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const load1 = loadavg()[0] ?? 0;
  // The compiled server, as npm start runs it (built now if missing or stale).
  if (spawnSync(process.execPath, ['scripts/ensure-built.mjs'], { cwd: ROOT, stdio: 'inherit' }).status !== 0) throw new Error('the build failed');
  console.log(`benchmark: ${ROUNDS} round(s) of ${DURATION_S} s per server, ${CONNECTIONS} connections; load average ${load1.toFixed(2)}`);

  const runs: Record<Rounded, ServerRun[]> = { 'node:http': [], 'bare Hono': [], 'bare Hono, same flags': [], collector: [] };
  for (let round = 1; round <= ROUNDS; round++) {
    // Interleaved, so a burst of noise from elsewhere on the machine hurts every server alike.
    for (const name of ['node:http', 'bare Hono', 'bare Hono, same flags', 'collector'] as const) {
      const run = await measureRounded(name, round);
      runs[name].push(run);
      console.log(`  round ${round} ${name}: ${describe(run)}`);
    }
  }
  const summary = (name: Rounded) => {
    const list = runs[name];
    const mid = (pick: (run: ServerRun) => number) => median(list.map(pick));
    return {
      load: { requestsPerSecond: mid((r) => r.load.requestsPerSecond), p50: mid((r) => r.load.p50), p99: mid((r) => r.load.p99) },
      cpuPerRequest: mid((r) => r.cpuPerRequest),
      peakRss: Math.max(...list.map((r) => r.peakRss)),
      threads: list[0]?.threads
        ? { main: mid((r) => r.threads?.main ?? 0), delivery: mid((r) => r.threads?.delivery ?? 0), relay: mid((r) => r.threads?.relay ?? 0), other: mid((r) => r.threads?.other ?? 0) }
        : undefined,
    };
  };
  const node = summary('node:http');
  const hono = summary('bare Hono');
  const honoSameFlags = summary('bare Hono, same flags');
  const collector = summary('collector');

  console.log('  the collector with its relay off (taking hits only)…');
  const ingestOnly = await withCollectors(sqliteFile(work, 'ingest-only'), { kind: 'ok' }, [{ ANALYTICS_RELAY: 'off', ANALYTICS_OUTBOX_MAX: '100000000' }], (servers) =>
    loadServers(servers, WARMUP_S, DURATION_S),
  );
  console.log(`    ${describe(ingestOnly)}`);

  console.log('  the collector on PostgreSQL…');
  const postgres = await startPostgres();
  let pgOne: ServerRun;
  let pgTwo: ServerRun;
  try {
    pgOne = await measurePostgres(postgres, 1);
    console.log(`    one collector: ${describe(pgOne)}`);
    pgTwo = await measurePostgres(postgres, 2);
    console.log(`    two collectors: ${describe(pgTwo)}`);
  } finally {
    await postgres.stop();
  }

  console.log('  batching at a steady pace, and in a burst…');
  const steady = await measureBatching(sqliteFile(work, 'steady'), STEADY);
  const burst = await measureBatching(sqliteFile(work, 'burst'), BURST);
  console.log('  drain after an outage…');
  const drain = await measureDrain(sqliteFile(work, 'drain'), DRAIN_HITS);
  console.log('  start-up…');
  const starts = await measureStart(sqliteFile(work, 'start'), STARTS);

  const snippet = existsSync(SNIPPET_PATH) ? snippetSize() : undefined;
  const cpuRatio = collector.cpuPerRequest / hono.cpuPerRequest;
  const throughputRatio = collector.load.requestsPerSecond / hono.load.requestsPerSecond;
  const worst = (perToken: Map<string, number>) => Math.max(...perToken.values());
  const perToken = (m: Map<string, number>) => [...m].map(([id, n]) => `${id} ${n.toFixed(1)}`).join(' · ');
  const startMs = median(starts);
  const peakRss = Math.max(collector.peakRss, ingestOnly.peakRss);
  const pgRow = (label: string, run: ServerRun) => [
    label,
    `${describe(run)} · PostgreSQL's own processes ${int(run.databaseCpuPerRequest ?? 0)} µs CPU a hit`,
    'none yet',
    '',
  ];

  const targets = table([
    ['figure', 'measured', 'target', 'result'],
    ['node:http: POST /collect', `${describe(node)} · peak RSS ${mb(node.peakRss)}`, '', ''],
    ['bare Hono: POST /collect', `${describe(hono)} · peak RSS ${mb(hono.peakRss)}`, '', ''],
    [`bare Hono with the collector's Node flags (${COLLECTOR_NODE_FLAGS.join(' ')})`, `${describe(honoSameFlags)} · peak RSS ${mb(honoSameFlags.peakRss)}`, '', ''],
    ['collector (SQLite): POST /collect', `${describe(collector)} · peak RSS ${mb(collector.peakRss)}`, '', ''],
    ['collector ÷ bare Hono: CPU a hit (all threads, relay included)', cpuRatio.toFixed(2), `≤ ${TARGETS.cpuToHono}`, verdict(cpuRatio <= TARGETS.cpuToHono)],
    ['collector ÷ bare Hono: throughput', throughputRatio.toFixed(2), `≥ ${TARGETS.throughputToHono}`, verdict(throughputRatio >= TARGETS.throughputToHono)],
    [
      "collector ÷ bare Hono on the collector's Node flags: CPU a hit, throughput",
      `${(collector.cpuPerRequest / honoSameFlags.cpuPerRequest).toFixed(2)} · ${(collector.load.requestsPerSecond / honoSameFlags.load.requestsPerSecond).toFixed(2)}`,
      '',
      '',
    ],
    ['collector p99 at 50 connections', `${collector.load.p99} ms`, `≤ ${TARGETS.p99Ms} ms`, verdict(collector.load.p99 <= TARGETS.p99Ms)],
    ['collector, relay off (taking hits only)', describe(ingestOnly), '', ''],
    pgRow('collector on PostgreSQL, one process', pgOne),
    pgRow('collector on PostgreSQL, two processes (25 connections each)', pgTwo),
    [
      `GA requests per 1,000 page views per token, steady (${STEADY.pageViews} at ${STEADY.rate}/s)`,
      perToken(steady),
      `≤ ${TARGETS.gaRequestsPer1000}`,
      verdict(worst(steady) <= TARGETS.gaRequestsPer1000),
    ],
    [
      `GA requests per 1,000 page views per token, burst (${BURST.pageViews} at ~${BURST.rate}/s, ${BURST.connections} in flight)`,
      perToken(burst),
      `≤ ${TARGETS.gaRequestsPer1000}`,
      verdict(worst(burst) <= TARGETS.gaRequestsPer1000),
    ],
    [
      `drain: ${int(drain.events)} events queued while GA was down`,
      `${(drain.totalMs / 1000).toFixed(1)} s (${(drain.backoffMs / 1000).toFixed(1)} s back-off, then ${((drain.totalMs - drain.backoffMs) / 1000).toFixed(1)} s delivering)`,
      `< ${TARGETS.drainMs / 1000} s`,
      verdict(drain.totalMs < TARGETS.drainMs),
    ],
    ['collector peak RSS under load', mb(peakRss), `< ${mb(TARGETS.peakRssBytes)}`, verdict(peakRss < TARGETS.peakRssBytes)],
    [
      `start to /healthz 200 (${COLLECTOR}, existing database, median of ${STARTS})`,
      `${int(startMs)} ms (${starts.map((ms) => int(ms)).join(', ')})`,
      `≤ ${TARGETS.startMs} ms`,
      verdict(startMs <= TARGETS.startMs),
    ],
    snippet
      ? ['snippet dist/analytics.js', `${int(snippet.minified)} B minified · ${int(snippet.gzipped)} B gzipped`, `≤ ${TARGETS.snippetGzip} B gzipped`, verdict(snippet.gzipped <= TARGETS.snippetGzip)]
      : ['snippet dist/analytics.js', 'not built', `≤ ${TARGETS.snippetGzip} B gzipped`, verdict(false)],
    ['peers, gzipped', PEERS, '', ''],
  ]);

  // Where the time goes: CPU a hit by thread, for the collector delivering and for it taking hits only.
  const split = (run: { threads?: ThreadSplit; cpuPerRequest: number }) => {
    const t = run.threads ?? { main: 0, delivery: 0, relay: 0, other: 0 };
    return [int(t.main), int(t.delivery), int(t.relay), int(t.other), int(run.cpuPerRequest)];
  };
  const timeTable = table([
    ['µs CPU a hit', 'main thread (HTTP, checks, hand-off)', 'delivery thread (group commits)', 'relay thread (claims, GA requests, settlements)', 'other threads (GC, I/O)', 'whole process'],
    ['bare Hono, reading the body and answering 204', '', '', '', '', int(hono.cpuPerRequest)],
    ['collector, relay off: hits validated and committed to disk', ...split(ingestOnly)],
    ['collector, relay delivering both tokens’ events to GA', ...split(collector)],
  ]);

  const cpu = cpus();
  const heading =
    `${startedAt.toISOString().slice(0, 10)} · ${cpu.length} cores (${cpu[0]?.model.trim() ?? 'unknown CPU'}) · Node ${process.version} · ` +
    `load average ${load1.toFixed(2)} at start · ${CONNECTIONS} connections, ${WARMUP_S} s warm-up then ${DURATION_S} s measured per run, median of ${ROUNDS} for the first four servers`;
  const report = `${heading}\n\n${targets}\n\nWhere the time goes:\n\n${timeTable}\n`;
  console.log(`\n${report}`);
  mkdirSync(dirname(options.out), { recursive: true });
  writeFileSync(options.out, report);
  console.log(`written to ${options.out}`);
  if (report.includes(verdict(false))) process.exitCode = 1;
}

try {
  await main();
} finally {
  rmSync(work, { recursive: true, force: true });
}
