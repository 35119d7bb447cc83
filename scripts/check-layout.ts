// `npm run check:layout`: the layout rules of server/ that a reviewer would otherwise have to remember.
// No import cycle (type imports included), each area imports only the areas beneath it, no source file over
// 400 lines, and at most four loose files at the top of server/.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SERVER = join(ROOT, 'server');
const MAX_LINES = 400;
const MAX_LOOSE_FILES = 4;

/** What each area of server/ may import besides itself: the areas beneath it. */
const MAY_IMPORT: Record<string, readonly string[]> = {
  core: [],
  store: ['core'],
  tokens: ['core', 'store'],
  delivery: ['core', 'store', 'tokens'],
  ingest: ['core', 'store', 'tokens', 'delivery'],
  'host-events': ['core', 'store', 'tokens', 'delivery'],
  admin: ['core', 'store', 'tokens', 'delivery', 'ingest', 'host-events', '(top)'],
};

function sourceFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|tsx)$/.test(name) ? [path] : [];
  });
}

/** Relative imports and re-exports of a file (type-only ones included), as absolute paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'";]*?from\s*['"](\.{1,2}\/[^'"]+)['"]/g)];
  const dynamic = [...text.matchAll(/import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g)];
  return [...found, ...dynamic].map((m) => resolve(dirname(file), m[1] as string));
}

/** The area of a server/ file: its first folder, or `(top)` for the loose files. */
function areaOf(file: string): string {
  const parts = relative(SERVER, file).split(sep);
  return parts.length === 1 ? '(top)' : (parts[0] as string);
}

/** Every import cycle among `files`, as lists of files (Tarjan's strongly connected components). */
function cycles(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string): void => {
    indexOf.set(node, index);
    low.set(node, index);
    index += 1;
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (!indexOf.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node) as number, low.get(next) as number));
      } else if (onStack.has(next)) {
        low.set(node, Math.min(low.get(node) as number, indexOf.get(next) as number));
      }
    }
    if (low.get(node) === indexOf.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop() as string;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component);
    }
  };
  for (const node of graph.keys()) if (!indexOf.has(node)) visit(node);
  return found;
}

/** Every breach of the layout rules, one sentence each; empty when the layout holds. */
export function layoutProblems(): string[] {
  const problems: string[] = [];
  const files = sourceFiles(SERVER);
  const graph = new Map(files.map((file) => [file, importsOf(file)]));
  const rel = (file: string) => relative(ROOT, file);

  for (const cycle of cycles(graph)) problems.push(`import cycle: ${cycle.map(rel).sort().join(' -> ')}`);

  for (const [file, imports] of graph) {
    const area = areaOf(file);
    if (area === '(top)') continue;
    const allowed = MAY_IMPORT[area];
    if (!allowed) {
      problems.push(`${rel(file)}: server/${area}/ is not a known area (add it to MAY_IMPORT)`);
      continue;
    }
    for (const target of imports) {
      if (!target.startsWith(SERVER + sep)) continue;
      const targetArea = areaOf(target);
      if (targetArea !== area && !allowed.includes(targetArea)) {
        problems.push(`${rel(file)} imports ${rel(target)}: ${area} may import only ${[...allowed].join(', ') || 'nothing else'}`);
      }
    }
  }

  for (const file of [...files, ...sourceFiles(join(ROOT, 'client'))]) {
    const lines = readFileSync(file, 'utf8').split('\n').length;
    if (lines > MAX_LINES) problems.push(`${rel(file)} has ${lines} lines (at most ${MAX_LINES})`);
  }

  const loose = files.filter((file) => areaOf(file) === '(top)');
  if (loose.length > MAX_LOOSE_FILES) problems.push(`server/ has ${loose.length} loose files (at most ${MAX_LOOSE_FILES}): ${loose.map(rel).join(', ')}`);
  return problems;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const problems = layoutProblems();
  for (const problem of problems) console.error(problem);
  if (problems.length > 0) process.exit(1);
  console.log('layout: no import cycle, areas import only beneath them, files within 400 lines');
}
