import type { Statement } from 'better-sqlite3';
import { asc, eq } from 'drizzle-orm';
import type { Clock } from '../core/clock.ts';
import type { Db } from '../store/database.ts';
import { tokens as tokensTable, type Token } from '../store/schema.ts';
import { featureOn, type Feature } from './features.ts';
import { compilePathPattern, type PathPattern } from './ignore-paths.ts';
import { skipReason } from './team-token.ts';
import type { NewTokenInput, TokenPatch } from './token-input.ts';

export type { Token } from '../store/schema.ts';

/** A token as the hot path needs it: its ignore paths compiled once. */
export interface ActiveToken {
  token: Token;
  ignore: PathPattern[];
}

/** Options of {@link Tokens}. */
export interface TokensOptions {
  clock: Clock;
  /** How often to look for changes made by other processes (0: on every read). */
  recheckMs?: number;
  /** Called after a token was deleted (its events went with it, by cascade). */
  afterDelete?: () => void;
}

/**
 * The tokens: which receive what (cached, since every page view asks) and the admin's changes to them.
 * Every write goes through here and refreshes the cache itself; changes made by other processes on the
 * same database are seen within `recheckMs`.
 */
export class Tokens {
  private cache: ActiveToken[] | undefined;
  private readonly byFeature = new Map<Feature, ActiveToken[]>();
  private dataVersion = -1;
  private versionQuery: Statement | undefined;
  private checkedAt = -Infinity;
  private readonly recheckMs: number;

  constructor(
    private readonly db: Db,
    private readonly options: TokensOptions,
  ) {
    this.recheckMs = options.recheckMs ?? 1000;
  }

  /** Every token, by id, as stored. */
  list(): Token[] {
    return this.db.select().from(tokensTable).orderBy(asc(tokensTable.id)).all();
  }

  /** One token, or undefined. */
  find(id: number): Token | undefined {
    return this.db.select().from(tokensTable).where(eq(tokensTable.id, id)).get();
  }

  /** Stores a new token (already checked by `newTokenSchema`). */
  create(input: NewTokenInput): Token {
    const now = this.options.clock();
    const token = this.db
      .insert(tokensTable)
      .values({ ...input, createdAt: now, updatedAt: now })
      .returning()
      .get();
    this.forget();
    return token;
  }

  /** Applies a partial update (already checked by `parseTokenPatch`); undefined when the token does not exist. */
  update(id: number, patch: TokenPatch): Token | undefined {
    const token = this.db
      .update(tokensTable)
      .set({ ...patch, updatedAt: this.options.clock() })
      .where(eq(tokensTable.id, id))
      .returning()
      .get();
    this.forget();
    return token;
  }

  /** Deletes a token and (by cascade) its waiting and failed events; false when it did not exist. */
  delete(id: number): boolean {
    const changed = this.db.delete(tokensTable).where(eq(tokensTable.id, id)).run().changes;
    this.forget();
    this.options.afterDelete?.();
    return changed > 0;
  }

  /** Every token, ignore paths compiled (an invalid stored pattern matches every path). */
  all(): ActiveToken[] {
    // data_version moves when another connection (another process on the same file) commits: its token
    // changes count too, within `recheckMs` (asking on every page view was a real share of its cost).
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
      this.cache = this.list().map((token) => ({ token, ignore: token.ignorePaths.flatMap(compileOrSkip) }));
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

  private forget(): void {
    this.cache = undefined;
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
