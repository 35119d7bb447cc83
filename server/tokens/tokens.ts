import type { Clock } from '../core/clock.ts';
import type { Store } from '../store/store.ts';
import type { Token, TokenSettings } from '../store/types.ts';
import { featureOn, type Feature } from './features.ts';
import { compileIgnorePaths, type PathPattern } from './ignore-paths.ts';
import { skipReason } from './team-token.ts';

export type { Token, TokenSettings } from '../store/types.ts';

/** A token as the hot path needs it: its ignore paths compiled once. */
export interface ActiveToken {
  token: Token;
  ignore: PathPattern[];
}

/** Options of {@link Tokens}. */
export interface TokensOptions {
  clock: Clock;
  /** How often to look whether another process changed the tokens (they are seen within this, plus a read). */
  recheckMs?: number;
}

/**
 * The tokens: which receive what, cached since every page view asks, and the admin's changes to them. Every
 * write goes through here and refreshes the cache itself; changes made by other processes sharing the store
 * are seen within `recheckMs` of the next read.
 */
export class Tokens {
  private cache: ActiveToken[] = [];
  private readonly byFeature = new Map<Feature, ActiveToken[]>();
  private version = -1;
  private checkedAt = -Infinity;
  private checking: Promise<void> | undefined;
  private readonly recheckMs: number;

  constructor(
    private readonly store: Store,
    private readonly options: TokensOptions,
  ) {
    this.recheckMs = options.recheckMs ?? 1000;
  }

  /** Loads the cache (before serving), and again whenever another process changed the tokens. */
  async refresh(): Promise<void> {
    const version = await this.store.tokensVersion();
    this.checkedAt = Date.now();
    if (version === this.version) return;
    const tokens = await this.store.listTokens();
    this.version = version;
    this.cache = tokens.map((token) => ({ token, ignore: compileIgnorePaths(token.ignorePaths).patterns }));
    this.byFeature.clear();
  }

  /** Every token, by id, as stored now. */
  list(): Promise<Token[]> {
    return this.store.listTokens();
  }

  /** One token as stored now, or undefined. */
  find(id: number): Promise<Token | undefined> {
    return this.store.findToken(id);
  }

  /** Stores a new token (already checked by `newTokenSchema`). */
  async create(settings: TokenSettings): Promise<Token> {
    const token = await this.store.createToken(settings, this.options.clock());
    await this.refresh();
    return token;
  }

  /** Applies a partial update (already checked by `parseTokenPatch`); undefined when the token does not exist. */
  async update(id: number, patch: Partial<TokenSettings>): Promise<Token | undefined> {
    const token = await this.store.updateToken(id, patch, this.options.clock());
    await this.refresh();
    return token;
  }

  /** Deletes a token and its waiting and failed events; false when it did not exist. */
  async delete(id: number): Promise<boolean> {
    const deleted = await this.store.deleteToken(id);
    await this.refresh();
    return deleted;
  }

  /** Every token as last loaded, ignore paths compiled (an invalid stored pattern matches every path). */
  all(): ActiveToken[] {
    this.recheck();
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

  /** Whether any token can be sent to at all (not the placeholder, a secret set), whatever its features. */
  anyCanReceive(): boolean {
    return this.all().some((t) => skipReason(t.token) === undefined);
  }

  /** Looks in the background whether another process changed the tokens, at most once per `recheckMs`. */
  private recheck(): void {
    if (this.checking || Date.now() - this.checkedAt < this.recheckMs) return;
    this.checking = this.refresh()
      .catch(() => {
        // The store does not answer: keep serving what is known, and look again at the next read.
      })
      .finally(() => (this.checking = undefined));
  }
}
