// `npm run bench:compare -- <main.js> <main.js> …`: builds of the collector under the bench's load, in alternating
// runs, with CPU a hit by thread. A change under about 3 µs a hit shows only this way: runs minutes apart differ
// by up to ±7 %. Keep a build to compare with inside the repository, where its packages resolve:
//   cp -r dist .compare/before/ && <change, npm run build> && npm run bench:compare -- .compare/before/dist/server/main.js dist/server/main.js
// `<main.js>|<node flags>` runs that build with other Node flags than npm start's. Loopback only, bounded in time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadServers, withCollectors, type ServerRun } from './measure.ts';

const { values: options, positionals: builds } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '4' },
    duration: { type: 'string', default: '8' },
  },
});
if (builds.length === 0) {
  console.error('usage: npm run bench:compare -- [--rounds 3] [--warmup 4] [--duration 8] <main.js>[|<node flags>] …');
  process.exit(2);
}

const line = (run: ServerRun) => {
  const t = run.threads;
  const split = t ? ` (main ${t.main.toFixed(1)}, delivery ${t.delivery.toFixed(1)}, relay ${t.relay.toFixed(1)}, other ${t.other.toFixed(1)})` : '';
  return `${run.cpuPerRequest.toFixed(1)} µs a hit${split} · ${Math.round(run.load.requestsPerSecond)} a second · p99 ${run.load.p99} ms · peak RSS ${Math.round(run.peakRss / 2 ** 20)} MB`;
};

const work = mkdtempSync(join(tmpdir(), 'analytics-compare-'));
const results = new Map<string, string[]>(builds.map((b) => [b, []]));
try {
  for (let round = 1; round <= Number(options.rounds); round++) {
    for (const [i, build] of builds.entries()) {
      const [script, flags] = build.split('|') as [string, string | undefined];
      const nodeFlags = flags?.split(/\s+/).filter(Boolean);
      const run = await withCollectors(join(work, `${round}-${i}.db`), { kind: 'ok' }, [{}], (servers) => loadServers(servers, Number(options.warmup), Number(options.duration)), {
        script,
        nodeFlags,
      });
      results.get(build)?.push(line(run));
      console.log(`round ${round} ${build}: ${line(run)}`);
    }
  }
  for (const [build, lines] of results) console.log(`\n${build}\n  ${lines.join('\n  ')}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
