import type { Statement } from 'better-sqlite3';
import type { Db } from '../store/database.ts';
import { tokens, type Token } from '../store/schema.ts';
import { compilePathPattern, type PathPattern } from './ignore-paths.ts';
import { skipReason } from './team-token.ts';

/** The three things a token can receive, each switchable. */
export type Feature = 'pageViews' | 'taskEvents' | 'dailyStats';

const SWITCH: Record<Feature, 'sendPageViews' | 'sendTaskEvents' | 'sendDailyStats'> = {
  pageViews: 'sendPageViews',
  taskEvents: 'sendTaskEvents',
  dailyStats: 'sendDailyStats',
};

/**
 * The feature an outbox event belongs to, by its GA event name.
 * @example featureOfEvent('installed_app') // 'dailyStats'
 */
export function featureOfEvent(name: string): Feature {
  if (name === 'page_view') return 'pageViews';
  if (name === 'daily_stats' || name === 'installed_app') return 'dailyStats';
  return 'taskEvents';
}

/** Whether `token` has `feature` switched on. */
export function featureOn(token: Token, feature: Feature): boolean {
  return token[SWITCH[feature]];
}

/** A token as the hot path needs it: its ignore paths compiled once. */
export interface ActiveToken {
  token: Token;
  ignore: PathPattern[];
}

/**
 * Which tokens receive what. Reads are cached (every page view asks); whoever changes the tokens
 * table calls {@link TokenDirectory.invalidate}.
 */
export class TokenDirectory {
  private cache: ActiveToken[] | undefined;
  private readonly byFeature = new Map<Feature, ActiveToken[]>();
  private dataVersion = -1;
  private versionQuery: Statement | undefined;
  private checkedAt = -Infinity;

  /** @param recheckMs how often to look for changes made by other processes (0: on every read) */
  constructor(
    private readonly db: Db,
    private readonly recheckMs: number = 1000,
  ) {}

  /** Forget the cached tokens: call after any insert, update or delete of a token. */
  invalidate(): void {
    this.cache = undefined;
  }

  /** Every token, ignore paths compiled (an invalid stored pattern matches every path). */
  all(): ActiveToken[] {
    // data_version moves when another connection (another process on the same file) commits: its token
    // changes count too, within `recheckMs` (asking on every page view was a real share of its cost).
    // Our own changes call invalidate().
    const now = Date.now();
    if (now - this.checkedAt >= this.recheckMs) {
      this.checkedAt = now;
      this.versionQuery ??= this.db.$client.prepare('PRAGMA data_version').pluck();
      const version = this.versionQuery.get() as number;
      if (version !== this.dataVersion) {
        this.dataVersion = version;
        this.cache = undefined;
      }
    }
    if (!this.cache) {
      this.cache = this.db
        .select()
        .from(tokens)
        .all()
        .map((token) => ({ token, ignore: token.ignorePaths.flatMap(compileOrSkip) }));
      this.byFeature.clear();
    }
    return this.cache;
  }

  /** Tokens that have `feature` on and can be sent to (not the placeholder, a secret set). */
  recipients(feature: Feature): ActiveToken[] {
    const all = this.all();
    // Every page view asks: filtered once per change of the tokens, not once per hit.
    let list = this.byFeature.get(feature);
    if (!list) {
      list = all.filter((t) => featureOn(t.token, feature) && skipReason(t.token) === undefined);
      this.byFeature.set(feature, list);
    }
    return list;
  }
}

/** Matches every path: what a stored ignore path that no longer compiles stands for. */
const IGNORE_EVERYTHING: PathPattern = { test: () => true };

function compileOrSkip(source: string): PathPattern[] {
  try {
    return [compilePathPattern(source)];
  } catch {
    // Fail closed: the owner meant to keep some paths from this token, so an unusable pattern keeps all of
    // them rather than none (the admin refuses to save it again until it is fixed).
    return [IGNORE_EVERYTHING];
  }
}
