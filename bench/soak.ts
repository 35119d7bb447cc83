// `npm run soak`: steady page-view load while the fake GA flaps (ok, 503, hanging, resets, a black hole) and the
// collector is killed with SIGKILL and restarted twice; then GA comes back and the outbox drains. Every hit answered
// 204 must reach each enabled token exactly once, and nothing that was not accepted may arrive. Loopback only, bounded.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { DEFAULT_GA_TIMEOUT_MS } from '../server/delivery/ga-client.ts';
import { unpack } from '../server/store/sql-packets.ts';
import { startFakeGa, validateMpBody, type FakeGa, type FakeGaMode } from '../harness/fake-ga.ts';
import { COLLECTOR_NODE_FLAGS, HIT_HEADERS, collectorEnv, hitBody, metricSum, prepareDatabase, readMetrics, sleep, startScript, until, type ServerProcess } from './support.ts';

const { values: options } = parseArgs({
  options: {
    duration: { type: 'string', default: '120' },
    rate: { type: 'string', default: '100' },
    drain: { type: 'string', default: '240' },
    gc: { type: 'string', default: 'full' },
  },
});
const DURATION_S = Number(options.duration);
const RATE = Number(options.rate);
const DRAIN_TIMEOUT_MS = Number(options.drain) * 1000;
const MAX_IN_FLIGHT = 64;
const HIT_TIMEOUT_MS = 5_000;
const DOWNTIME_MS = 2_000;
const SHOWN_IDS = 40;
if (options.gc !== 'full' && options.gc !== 'default') throw new Error('--gc is full or default');
// `full` (V8's --gc-global): every collection is a full one, which clears what only weak references hold at once
// rather than now and then. With ordinary collections, a GA request timeout held that weakly got through the
// black hole in most runs. `default` runs the collector exactly as `npm start` does.
const SOAK_NODE_FLAGS = options.gc === 'full' ? [...COLLECTOR_NODE_FLAGS, '--gc-global'] : COLLECTOR_NODE_FLAGS;
// A request the black hole took must be given up by the collector within its GA timeout, plus this.
const ABANDON_GRACE_MS = 5_000;
// After the black hole: one hung request's timeout and a few back-offs, far from a stalled relay.
const RECOVERY_LIMIT_MS = DEFAULT_GA_TIMEOUT_MS + 20_000;
// The black hole stays past its window, by at most this, until it has taken a request: tokens held by the
// back-off of the faults before it may send nothing in the window itself.
const BLACK_HOLE_EXTRA_MS = 60_000;

const ENABLED = ['G-SOAK1', 'G-SOAK2'];
const PAGE_VIEWS_OFF = 'G-SOAK3';

/** What happened to one hit, as the sender saw it. */
type Outcome = 'accepted' | 'ignored' | 'refused' | 'unanswered' | 'not-connected';

type Step = { at: number; label: string } & ({ kind: 'ga'; mode: FakeGaMode } | { kind: 'kill' });

/** The fault schedule for a 120-second run (stretched or squeezed to --duration). */
const SCHEDULE: Step[] = [
  { at: 12, label: 'GA answers 503', kind: 'ga', mode: { kind: 'status', status: 503 } },
  { at: 22, label: 'GA up', kind: 'ga', mode: { kind: 'ok' } },
  { at: 30, label: 'SIGKILL while GA is up', kind: 'kill' },
  { at: 38, label: 'GA hangs', kind: 'ga', mode: { kind: 'hang' } },
  { at: 50, label: 'GA up', kind: 'ga', mode: { kind: 'ok' } },
  { at: 58, label: 'GA resets connections', kind: 'ga', mode: { kind: 'reset' } },
  { at: 66, label: 'SIGKILL while GA resets', kind: 'kill' },
  { at: 72, label: 'GA up', kind: 'ga', mode: { kind: 'ok' } },
  { at: 80, label: 'GA answers 503', kind: 'ga', mode: { kind: 'status', status: 503 } },
  { at: 86, label: 'GA up', kind: 'ga', mode: { kind: 'ok' } },
  // A firewall dropping packets: connections stay open, nothing is answered, and the requests taken stay
  // unanswered after GA is back. Only the collector's own timeout frees them.
  { at: 92, label: 'GA is a black hole', kind: 'ga', mode: { kind: 'black-hole' } },
  { at: 108, label: "GA up; the black hole's requests stay unanswered", kind: 'ga', mode: { kind: 'ok' } },
];

/** The black-hole phase: which of GA's requests it took, and when GA answered again. */
interface BlackHole {
  firstRequest: number;
  lastRequest: number;
  endedAt: number;
}

const work = mkdtempSync(join(tmpdir(), 'analytics-soak-'));
const dbPath = join(work, 'soak.db');

/** Sends hits `/soak/<n>` at a steady rate to whichever collector is up, and remembers every answer. */
class HitSender {
  readonly outcomes = new Map<number, Outcome>();
  private sent = 0;
  private inFlight = 0;

  constructor(private readonly target: () => string) {}

  async run(rate: number, durationMs: number): Promise<void> {
    const start = Date.now();
    while (Date.now() - start < durationMs) {
      const due = Math.floor(((Date.now() - start) / 1000) * rate);
      while (this.sent < due && this.inFlight < MAX_IN_FLIGHT) void this.send(this.sent++);
      await sleep(5);
    }
    await until(() => this.inFlight === 0, HIT_TIMEOUT_MS * 2);
  }

  private async send(id: number): Promise<void> {
    this.inFlight++;
    try {
      const res = await fetch(`${this.target()}/collect`, {
        method: 'POST',
        headers: HIT_HEADERS,
        body: hitBody(`/soak/${id}`),
        signal: AbortSignal.timeout(HIT_TIMEOUT_MS),
      });
      await res.arrayBuffer();
      if (res.status !== 204) this.outcomes.set(id, 'refused');
      else this.outcomes.set(id, res.headers.has('x-analytics-ignored') ? 'ignored' : 'accepted');
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      // A refused connection never reached a collector; anything else may have been committed before it broke.
      this.outcomes.set(id, code === 'ECONNREFUSED' ? 'not-connected' : 'unanswered');
    } finally {
      this.inFlight--;
    }
  }
}

/**
 * `measurementId path` of every page view in a request GA accepted, in order. The install's daily phone-in goes
 * too (a minute after each start, when the collector lives that long), and is not a hit.
 */
function acceptedKeys(ga: FakeGa): string[] {
  return ga
    .delivered()
    .filter((event) => event.name === 'page_view')
    .map((event) => `${event.measurementId} ${new URL(String(event.params.page_location)).pathname}`);
}

/**
 * After a SIGKILL: events still waiting in the outbox that GA had already taken. GA answered, the collector
 * died before it recorded the delivery, so they will be sent again: at-least-once delivery across a crash.
 */
function takenButNotRecorded(ga: FakeGa): Set<string> {
  const taken = new Set(acceptedKeys(ga));
  const db = new Database(dbPath);
  try {
    const rows = db
      .prepare(`SELECT t.measurement_id AS measurementId, o.params AS params, o.events AS events FROM outbox o JOIN tokens t ON t.id = o.token_id WHERE o.status IN ('pending', 'packed') AND o.name = 'page_view'`)
      .all() as Array<{ measurementId: string; params: string; events: string | null }>;
    const out = new Set<string>();
    // A packet holds several events (see server/store/sql-packets.ts).
    const events = rows.flatMap((row) => (row.events === null ? [row] : unpack(row.events).map((e) => ({ measurementId: row.measurementId, params: e.params }))));
    for (const row of events) {
      const path = new URL(String((JSON.parse(row.params) as { page_location: unknown }).page_location)).pathname;
      const key = `${row.measurementId} ${path}`;
      if (taken.has(key)) out.add(key);
    }
    return out;
  } finally {
    db.close();
  }
}

function failedRows(): number {
  const db = new Database(dbPath, { readonly: true });
  try {
    return (db.prepare(`SELECT count(*) AS n FROM outbox WHERE status = 'failed'`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

const int = (n: number) => n.toLocaleString('en-US');
const shown = (list: string[]) => `${list.slice(0, SHOWN_IDS).join(', ')}${list.length > SHOWN_IDS ? `, … (${int(list.length)} in all)` : ''}`;

async function main(): Promise<boolean> {
  await prepareDatabase(dbPath, [...ENABLED.map((measurementId) => ({ measurementId })), { measurementId: PAGE_VIEWS_OFF, sendPageViews: false }]);
  const ga = await startFakeGa();
  let collector: ServerProcess = await startScript('server/main.ts', collectorEnv(dbPath, ga.url), SOAK_NODE_FLAGS);
  const port = new URL(collector.url).port;
  const url = collector.url;
  const explained = new Set<string>();
  const log = (message: string) => console.log(`${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${message}`);

  const started = Date.now();
  console.log(
    `soak: ${DURATION_S} s at ${RATE} hits/s to ${url} (gc ${options.gc}); tokens ${ENABLED.join(', ')} (page views on), ${PAGE_VIEWS_OFF} (off)`,
  );
  const sender = new HitSender(() => url);
  const load = sender.run(RATE, DURATION_S * 1000);
  let kills = 0;
  let blackHole: BlackHole | undefined;
  let blackHoleFrom: number | undefined;
  try {
    for (const step of SCHEDULE) {
      const at = (step.at / 120) * DURATION_S * 1000;
      await sleep(Math.max(0, started + at - Date.now()));
      log(step.label);
      if (step.kind === 'ga') {
        if (blackHoleFrom !== undefined) {
          const from = blackHoleFrom;
          const tookOne = () => ga.requests.slice(from).some((r) => r.answer === 'black-hole');
          if (!tookOne()) {
            log(`the black hole has taken no request yet (the tokens are held by back-off): it stays until it does, at most ${BLACK_HOLE_EXTRA_MS / 1000} s`);
            await until(async () => tookOne(), BLACK_HOLE_EXTRA_MS, 200);
            log('GA up');
          }
          blackHole = { firstRequest: blackHoleFrom, lastRequest: ga.requests.length, endedAt: Date.now() };
          blackHoleFrom = undefined;
        }
        ga.setMode(step.mode);
        if (step.mode.kind === 'black-hole') blackHoleFrom = ga.requests.length;
        continue;
      }
      await collector.stop('SIGKILL');
      kills++;
      const window = takenButNotRecorded(ga);
      for (const key of window) explained.add(key);
      log(`collector killed; ${window.size} event(s) GA took but the collector had not recorded`);
      await sleep(DOWNTIME_MS);
      // The same port, so the load goes on to the same address.
      collector = await startScript('server/main.ts', collectorEnv(dbPath, ga.url, port), SOAK_NODE_FLAGS);
      log('collector restarted');
    }
    await load;
    log(`load over; GA up, waiting for the outbox to drain (at most ${DRAIN_TIMEOUT_MS / 1000} s)`);
    ga.setMode({ kind: 'ok' });

    const promised = [...sender.outcomes].filter(([, outcome]) => outcome === 'accepted').map(([id]) => id);
    const everyPromiseKept = () => {
      const taken = new Set(acceptedKeys(ga));
      return ENABLED.every((m) => promised.every((id) => taken.has(`${m} /soak/${id}`)));
    };
    const drained = await until(
      async () => metricSum(await readMetrics(collector.url), 'analytics_outbox_depth') === 0 && everyPromiseKept(),
      DRAIN_TIMEOUT_MS,
      500,
    );
    // Anything sent twice would arrive now.
    await sleep(3_000);
    log(drained ? 'drained' : 'NOT drained in time');
    const metrics = await readMetrics(collector.url);
    await collector.stop('SIGTERM');
    return report(sender.outcomes, ga, explained, kills, metrics, drained, blackHole);
  } finally {
    await collector.stop('SIGKILL');
    await ga.close();
  }
}

/** How the collector came through the black hole: each request it took given up in time, delivery resumed soon. */
function judgeBlackHole(ga: FakeGa, blackHole: BlackHole | undefined): { line: string; problems: string[] } {
  if (!blackHole) return { line: 'black hole: not reached', problems: ['the black-hole phase did not run'] };
  const taken = ga.requests.slice(blackHole.firstRequest, blackHole.lastRequest).filter((r) => r.answer === 'black-hole');
  const held = taken.map((r) => (r.abandonedAt === undefined ? undefined : r.abandonedAt - r.receivedAt));
  const neverGivenUp = held.filter((ms) => ms === undefined).length;
  const longest = Math.max(0, ...held.map((ms) => ms ?? 0));
  const firstAfter = ga.accepted().find((r) => r.receivedAt >= blackHole.endedAt);
  const recoveredInMs = firstAfter ? firstAfter.receivedAt - blackHole.endedAt : undefined;
  const problems: string[] = [];
  if (taken.length === 0) problems.push('the black hole took no request');
  if (neverGivenUp > 0) problems.push(`${neverGivenUp} request(s) the black hole took were never given up by the collector`);
  if (longest > DEFAULT_GA_TIMEOUT_MS + ABANDON_GRACE_MS) problems.push(`a request the black hole took was held ${(longest / 1000).toFixed(1)} s`);
  if (recoveredInMs === undefined || recoveredInMs > RECOVERY_LIMIT_MS) {
    problems.push(`GA took nothing within ${RECOVERY_LIMIT_MS / 1000} s of answering again after the black hole`);
  }
  const line =
    `black hole: ${taken.length} request(s) taken, never answered; each given up by the collector after at most ${(longest / 1000).toFixed(1)} s ` +
    `(timeout ${DEFAULT_GA_TIMEOUT_MS / 1000} s)${neverGivenUp > 0 ? `, ${neverGivenUp} never` : ''}; first delivery ` +
    `${recoveredInMs === undefined ? 'never' : `${(recoveredInMs / 1000).toFixed(1)} s`} after GA answered again`;
  return { line, problems };
}

function report(
  outcomes: Map<number, Outcome>,
  ga: FakeGa,
  explained: Set<string>,
  kills: number,
  metrics: Map<string, number>,
  drained: boolean,
  blackHole: BlackHole | undefined,
): boolean {
  const counts = new Map<string, Map<number, number>>();
  const strays: string[] = [];
  for (const key of acceptedKeys(ga)) {
    const [measurementId = '', path = ''] = key.split(' ');
    const match = /^\/soak\/(\d+)$/.exec(path);
    if (!match || !outcomes.has(Number(match[1]))) {
      strays.push(key);
      continue;
    }
    const perToken = counts.get(measurementId) ?? new Map<number, number>();
    perToken.set(Number(match[1]), (perToken.get(Number(match[1])) ?? 0) + 1);
    counts.set(measurementId, perToken);
  }

  const byOutcome = (wanted: Outcome) => [...outcomes].filter(([, o]) => o === wanted).map(([id]) => id);
  const accepted = byOutcome('accepted');
  const unanswered = byOutcome('unanswered');
  const neverAccepted = [...byOutcome('refused'), ...byOutcome('ignored'), ...byOutcome('not-connected')];

  const lost: string[] = [];
  let exactlyOnce = 0;
  const duplicated: string[] = [];
  const redelivered: string[] = [];
  const deliveredUnasked: string[] = [];
  let unansweredDelivered = 0;
  for (const m of ENABLED) {
    const perToken = counts.get(m) ?? new Map<number, number>();
    const judge = (id: number, allowed: number) => {
      const n = perToken.get(id) ?? 0;
      if (n < allowed) lost.push(`${m} ${id}`);
      else if (n > Math.max(allowed, 1)) {
        // One extra copy is at-least-once delivery when a SIGKILL fell between GA's answer and the record of it.
        if (n === 2 && explained.has(`${m} /soak/${id}`)) redelivered.push(`${m} ${id}`);
        else duplicated.push(`${m} ${id} ×${n}`);
      }
    };
    for (const id of accepted) {
      judge(id, 1);
      if (perToken.get(id) === 1) exactlyOnce++;
    }
    for (const id of unanswered) {
      judge(id, 0);
      if (perToken.has(id)) unansweredDelivered++;
    }
    for (const id of neverAccepted) if (perToken.has(id)) deliveredUnasked.push(`${m} ${id} (${outcomes.get(id)})`);
  }
  const offDeliveries = counts.get(PAGE_VIEWS_OFF)?.size ?? 0;
  const invalidRequests = ga.accepted().filter((r) => !r.body || validateMpBody(r.body, Buffer.byteLength(r.rawBody)).length > 0).length;
  const answers = new Map<string, number>();
  for (const r of ga.requests) answers.set(String(r.answer), (answers.get(String(r.answer)) ?? 0) + 1);
  const failed = failedRows();
  const throughBlackHole = judgeBlackHole(ga, blackHole);

  const lines = [
    '',
    `hits sent ${int(outcomes.size)}: answered 204 ${int(accepted.length)} · refused ${int(byOutcome('refused').length)} · ignored ${int(byOutcome('ignored').length)} · ` +
      `no answer (in flight at a kill) ${int(unanswered.length)} · no connection (collector down) ${int(byOutcome('not-connected').length)}`,
    `SIGKILLs ${kills}, restarts ${kills}; GA requests ${int(ga.requests.length)}: ${[...answers].map(([a, n]) => `${a} ${int(n)}`).join(' · ')}`,
    `deliveries per token: ${[...ENABLED, PAGE_VIEWS_OFF].map((m) => `${m} ${int([...(counts.get(m)?.values() ?? [])].reduce((a, b) => a + b, 0))}`).join(' · ')}`,
    `(hit answered 204, enabled token) pairs delivered exactly once: ${int(exactlyOnce)} of ${int(accepted.length * ENABLED.length)}`,
    `unanswered hits that were committed and delivered (allowed, at most once): ${int(unansweredDelivered)}`,
    `sent again after a SIGKILL fell between GA's answer and its record (at-least-once across a crash): ${redelivered.length === 0 ? 'none' : `${redelivered.length}: ${shown(redelivered)}`}`,
    `GA requests outside GA's limits: ${invalidRequests} · events left failed in the outbox: ${failed}`,
    throughBlackHole.line,
    `last collector's /metrics: received ${int(metricSum(metrics, 'analytics_hits_received_total'))} · queued ${int(metricSum(metrics, 'analytics_events_queued_total'))} · ` +
      `delivered ${ENABLED.map((_, i) => int(metricSum(metrics, 'analytics_events_delivered_total', { token: String(i + 2) }))).join('/')} · ` +
      `retried ${int(metricSum(metrics, 'analytics_events_retried_total'))} · failed ${int(metricSum(metrics, 'analytics_events_failed_total'))} · ` +
      `dropped ${int(metricSum(metrics, 'analytics_events_dropped_total'))} · outbox depth ${int(metricSum(metrics, 'analytics_outbox_depth'))}`,
  ];
  const problems: string[] = [...throughBlackHole.problems];
  if (!drained) problems.push('the outbox did not drain in time');
  if (lost.length > 0) problems.push(`LOST (token, hit id) ${lost.length}: ${shown(lost)}`);
  if (duplicated.length > 0) problems.push(`DUPLICATED (token, hit id, copies) ${duplicated.length}: ${shown(duplicated)}`);
  if (deliveredUnasked.length > 0) problems.push(`DELIVERED BUT NEVER ACCEPTED ${deliveredUnasked.length}: ${shown(deliveredUnasked)}`);
  if (strays.length > 0) problems.push(`DELIVERED BUT NEVER SENT ${strays.length}: ${shown(strays)}`);
  if (offDeliveries > 0) problems.push(`${PAGE_VIEWS_OFF} has page views off but received ${offDeliveries}`);
  if (invalidRequests > 0) problems.push(`${invalidRequests} GA requests broke GA's limits`);
  if (failed > 0) problems.push(`${failed} events ended failed`);
  console.log(lines.join('\n'));
  console.log(problems.length === 0 ? '\nPASS: no loss, no duplicate' : `\nFAIL\n${problems.join('\n')}`);
  return problems.length === 0;
}

try {
  if (!(await main())) process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
