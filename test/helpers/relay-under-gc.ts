// Run as `node --expose-gc --import tsx test/helpers/relay-under-gc.ts <timeoutMs>`; test/integration/ga-timeouts.test.ts
// does. A relay delivers to a fake GA that takes requests and never answers; each time a request hangs, a full
// garbage collection is forced. Then GA answers again (the old requests stay hung) and everything is delivered.
// Prints one JSON line, a {@link RelayUnderGcReport}, and leaves judging it to the test.
import { addTestToken, makeTestServices } from './app.ts';
import { startFakeGa } from '../../harness/fake-ga.ts';

/** What the child saw, for the test to judge. */
export interface RelayUnderGcReport {
  /** Per request GA never answered: ms from its arrival until the relay had counted it as failed (null: never). */
  abandonedAfterMs: Array<number | null>;
  /** The error the outbox rows were left with after the hung requests. */
  lastError: string | null;
  /** How many times GA accepted each event (by its label), once it answered again. */
  deliveredByLabel: Record<string, number>;
  expectedLabels: string[];
  outboxDepthAtEnd: number;
  gcRuns: number;
}

const HUNG_REQUESTS = 2;
const EVENTS_BEFORE = 20;
const EVENTS_DURING = 3;
const timeoutMs = Number(process.argv[2] ?? 1_000);
// Long enough to tell "abandoned late" from "never abandoned" without dragging on.
const GIVE_UP_WAITING_MS = timeoutMs * 5;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
async function until(predicate: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) return false;
    await sleep(5);
  }
  return true;
}

const ga = await startFakeGa();
const services = await makeTestServices({ config: { gaUrl: ga.url }, relay: { timeoutMs, lingerMs: 20, random: () => 0 } });
const token = await addTestToken(services);
const { relay } = services;
const queue = (labels: string[]) =>
  services.outbox.add(labels.map((label) => ({ tokenId: token.id, name: 'task_event', params: { namespace: 'gc', task: 'hang', label, value: 1 }, occurredAt: services.clock() })));
const failedRequests = () => services.metrics.gaRequests.get().then((m) => m.values.filter((v) => v.labels.outcome === 'retry').reduce((a, v) => a + v.value, 0));
let retries = 0;
const pollRetries = setInterval(() => void failedRequests().then((n) => (retries = n)), 5);

const expectedLabels: string[] = [];
const before = Array.from({ length: EVENTS_BEFORE }, (_, i) => `before-${i}`);
expectedLabels.push(...before);
await queue(before);

ga.setMode({ kind: 'black-hole' });
relay.start();
const abandonedAfterMs: Array<number | null> = [];
let gcRuns = 0;
for (let i = 0; i < HUNG_REQUESTS; i++) {
  await until(() => ga.requests.length > i, GIVE_UP_WAITING_MS);
  const request = ga.requests[i];
  if (!request) break;
  // While the request hangs: a full collection takes whatever only weak references still hold.
  await sleep(Math.min(100, timeoutMs / 4));
  gc();
  gcRuns++;
  const abandoned = await until(() => retries > i, request.receivedAt + GIVE_UP_WAITING_MS - Date.now());
  abandonedAfterMs.push(abandoned ? Date.now() - request.receivedAt : null);
  if (!abandoned) break;
  if (i === 0) {
    const during = Array.from({ length: EVENTS_DURING }, (_, j) => `during-${j}`);
    expectedLabels.push(...during);
    await queue(during);
  }
}
const lastError = (await services.sql<{ last_error: string | null }>('SELECT last_error FROM outbox ORDER BY id LIMIT 1'))[0]?.last_error ?? null;

// GA answers new requests again; those it took stay hung. Everything must arrive, once.
ga.setMode({ kind: 'ok' });
let depth = -1;
const pollDepth = setInterval(() => void services.outbox.depth().then((n) => (depth = n)), 5);
await until(() => depth === 0, 20 * timeoutMs);
clearInterval(pollDepth);
await sleep(500); // anything sent twice would arrive now
const deliveredByLabel: Record<string, number> = {};
for (const event of ga.delivered()) {
  const label = String(event.params.label);
  deliveredByLabel[label] = (deliveredByLabel[label] ?? 0) + 1;
}
const outboxDepthAtEnd = Number((await services.sql<{ n: number }>('SELECT count(*) AS n FROM outbox'))[0]?.n ?? -1);

clearInterval(pollRetries);
await relay.stop();
await services.store.close();
await ga.close();
const report: RelayUnderGcReport = { abandonedAfterMs, lastError, deliveredByLabel, expectedLabels, outboxDepthAtEnd, gcRuns };
console.log(JSON.stringify(report));
process.exit(0);
