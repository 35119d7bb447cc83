import { createHash } from 'node:crypto';
import type { Child, FC, PropsWithChildren } from 'hono/jsx';
import type { Token } from '../store/schema.ts';
import type { Feature } from '../tokens/tokens.ts';
import type { AdminPaths } from './paths.ts';
import { CSRF_FIELD } from './session.ts';
import type { DeliveryStatus, FailedDelivery, InstallInfo } from './status.ts';
import { maskSecret } from './secrets.ts';
import { SWITCHES } from '../tokens/token-input.ts';
import type { ValidationResult } from './validate.ts';

/** The pages' whole style sheet; inline, allowed by its hash, so the pages need no extra request. */
export const STYLE = `
:root { color-scheme: light; --ink: #1d2327; --muted: #5b6670; --line: #d5dade; --accent: #1f5fa8; --bad: #a4262c; --ok: #1e6b35; --warn-bg: #fff4ce; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); background: #f6f7f8; }
header { background: #23313f; color: #fff; padding: .6rem 1.5rem; display: flex; gap: 1.5rem; align-items: center; flex-wrap: wrap; }
header .brand { font-weight: 600; margin-right: auto; }
header a { color: #fff; }
header form { margin: 0; }
header button { background: transparent; color: #fff; border: 1px solid #8aa0b4; }
main { max-width: 78rem; margin: 0 auto; padding: 1.25rem 1.5rem 3rem; }
h1 { font-size: 1.5rem; margin: .25rem 0 1rem; }
h2 { font-size: 1.15rem; margin: 2rem 0 .5rem; }
a { color: var(--accent); }
.banner { padding: .75rem 1rem; border: 1px solid; border-radius: 4px; margin: 0 0 1rem; }
.banner.disabled { background: var(--warn-bg); border-color: #c8a600; font-weight: 600; }
.banner.notice { background: #e7f4ea; border-color: #7fb98f; }
.banner.error { background: #fbe9ea; border-color: #d6878b; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem; border-bottom: 1px solid var(--line); }
th { background: #eef1f3; font-weight: 600; font-size: .85rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; background: #fff; border: 1px solid var(--line); padding: .75rem 1rem; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; overflow-wrap: anywhere; }
.on { color: var(--ok); font-weight: 600; }
.off { color: var(--bad); font-weight: 600; }
.muted { color: var(--muted); }
.skipped { color: #7a5a00; font-weight: 600; }
.error-text { color: var(--bad); }
.actions { display: flex; gap: .4rem; flex-wrap: wrap; align-items: center; }
.actions form { margin: 0; }
button, .button { font: inherit; padding: .3rem .8rem; border-radius: 4px; border: 1px solid var(--accent); background: var(--accent); color: #fff; cursor: pointer; text-decoration: none; display: inline-block; }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
form.card { background: #fff; border: 1px solid var(--line); padding: 1rem 1.25rem; max-width: 44rem; }
.field { margin: 0 0 1rem; }
.field label, .field .label { display: block; font-weight: 600; margin-bottom: .2rem; }
.field input[type=text], .field input[type=password], .field textarea { width: 100%; font: inherit; padding: .35rem .5rem; border: 1px solid #9aa5ae; border-radius: 3px; }
.field textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; min-height: 6rem; }
.field.invalid input, .field.invalid textarea { border-color: var(--bad); outline: 1px solid var(--bad); }
.field .help { color: var(--muted); font-size: .85rem; margin: .2rem 0 0; }
.field .problem { color: var(--bad); font-weight: 600; margin: .2rem 0 0; }
.check { display: flex; gap: .5rem; align-items: center; font-weight: normal; }
fieldset { border: 1px solid var(--line); margin: 0 0 1rem; padding: .5rem 1rem; }
legend { font-weight: 600; padding: 0 .25rem; }
ul.messages { margin: .25rem 0 0; padding-left: 1.25rem; }
`;

const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;

/** The pages' Content-Security-Policy: no script at all, only the one style sheet, forms only to us. */
export const PAGE_CSP = `default-src 'none'; style-src '${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

const FEATURE_LABEL: Record<Feature, string> = {
  pageViews: 'Page views',
  taskEvents: 'Task events',
  dailyStats: 'Daily stats',
};

const SWITCH_LABEL: Record<(typeof SWITCHES)[number], string> = {
  sendPageViews: 'Page views',
  sendTaskEvents: 'Task events',
  sendDailyStats: 'Daily stats',
};

/** A time for people: UTC, to the minute. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'never';
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

const Csrf: FC<{ token: string }> = ({ token }) => <input type="hidden" name={CSRF_FIELD} value={token} />;

/** What every page is given: the admin's URLs for this request (every link and form action comes from them). */
export interface PageProps {
  paths: AdminPaths;
}

interface LayoutProps extends PageProps {
  title: string;
  /** The session's CSRF token; without one (logged out) the menu is not shown. */
  csrf?: string;
  disabled?: boolean;
  notice?: string;
  error?: string;
}

const Layout: FC<PropsWithChildren<LayoutProps>> = ({ paths, title, csrf, disabled, notice, error, children }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta name="viewport" content="width=device-width, initial-scale=1" />
      <meta name="referrer" content="no-referrer" />
      <title>{`${title} · Analytics admin`}</title>
      <style dangerouslySetInnerHTML={{ __html: STYLE }} />
    </head>
    <body>
      <header>
        <span class="brand">Analytics admin</span>
        {csrf !== undefined && (
          <>
            <a href={paths.tokens}>Tokens</a>
            <a href={paths.failed}>Failed deliveries</a>
            <form method="post" action={paths.logout}>
              <Csrf token={csrf} />
              <button type="submit">Log out</button>
            </form>
          </>
        )}
      </header>
      <main>
        {disabled && (
          <p class="banner disabled" role="alert">
            Analytics is disabled by ANALYTICS_DISABLED: nothing is queued or sent to any token, whatever the switches below say.
          </p>
        )}
        {notice && (
          <p class="banner notice" role="status">
            {notice}
          </p>
        )}
        {error && (
          <p class="banner error" role="alert">
            {error}
          </p>
        )}
        <h1>{title}</h1>
        {children}
      </main>
    </body>
  </html>
);

/** Props of {@link LoginPage}. */
export interface LoginPageProps extends PageProps {
  csrf: string;
  next: string;
  error?: string;
}

/** The login form: one password field for `ANALYTICS_ADMIN_TOKEN`. */
export const LoginPage: FC<LoginPageProps> = ({ paths, csrf, next, error }) => (
  <Layout paths={paths} title="Log in" error={error}>
    <form class="card" method="post" action={paths.login}>
      <Csrf token={csrf} />
      <input type="hidden" name="next" value={next} />
      <div class="field">
        <label for="token">Admin token</label>
        <input type="password" id="token" name="token" autocomplete="current-password" required autofocus />
        <p class="help">The value of ANALYTICS_ADMIN_TOKEN in the collector's environment.</p>
      </div>
      <button type="submit">Log in</button>
    </form>
  </Layout>
);

/** The logout confirmation (reached by a plain link; logging out itself is a POST). */
export const LogoutPage: FC<PageProps & { csrf: string }> = ({ paths, csrf }) => (
  <Layout paths={paths} title="Log out" csrf={csrf}>
    <form class="card" method="post" action={paths.logout}>
      <Csrf token={csrf} />
      <p>End this admin session?</p>
      <button type="submit">Log out</button>
    </form>
  </Layout>
);

const OnOff: FC<{ on: boolean }> = ({ on }) => (on ? <span class="on">on</span> : <span class="off">off</span>);

/** Props of {@link TokenListPage}. */
export interface TokenListPageProps extends PageProps {
  csrf: string;
  install: InstallInfo;
  tokens: Token[];
  statuses: DeliveryStatus[];
  failedTotal: number;
  notice?: string;
}

/** The token list: switches and delivery status per token, and the install's identity. */
export const TokenListPage: FC<TokenListPageProps> = ({ paths, csrf, install, tokens, statuses, failedTotal, notice }) => (
  <Layout paths={paths} title="Analytics tokens" csrf={csrf} disabled={install.disabled} notice={notice}>
    <p class="actions">
      <a class="button" href={paths.addToken}>
        Add a token
      </a>
      {failedTotal > 0 && (
        <a href={paths.failed}>
          {failedTotal} failed {failedTotal === 1 ? 'delivery' : 'deliveries'}
        </a>
      )}
    </p>
    {tokens.length === 0 ? (
      <p>No tokens: nothing is sent anywhere.</p>
    ) : (
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Measurement id</th>
            <th scope="col">Page views</th>
            <th scope="col">Task events</th>
            <th scope="col">Daily stats</th>
            <th scope="col">Status</th>
            <th scope="col">Delivered (24 h)</th>
            <th scope="col">Waiting</th>
            <th scope="col">Failed</th>
            <th scope="col">Last error</th>
            <th scope="col">Actions</th>
          </tr>
        </thead>
        <tbody>
          {tokens.map((token, i) => {
            const status = statuses[i];
            return (
              <tr id={`token-${token.id}`}>
                <td>
                  <a href={paths.token(token.id, 'change')}>{token.name}</a>
                </td>
                <td class="mono">{token.measurementId}</td>
                <td data-switch="sendPageViews">
                  <OnOff on={token.sendPageViews} />
                </td>
                <td data-switch="sendTaskEvents">
                  <OnOff on={token.sendTaskEvents} />
                </td>
                <td data-switch="sendDailyStats">
                  <OnOff on={token.sendDailyStats} />
                </td>
                <td>
                  {status?.skipped ? (
                    <span class="skipped">skipped: {status.skipped}</span>
                  ) : (
                    <span>
                      sending
                      <br />
                      <span class="muted">last delivery {formatTime(status?.lastDeliveredAt)}</span>
                    </span>
                  )}
                </td>
                <td class="num">{status?.delivered24h ?? 0}</td>
                <td class="num">{status?.waiting ?? 0}</td>
                <td class="num">{status?.failed ?? 0}</td>
                <td>
                  {status?.lastError ? (
                    <span>
                      <span class="error-text">{status.lastError}</span>
                      <br />
                      <span class="muted">{formatTime(status.lastErrorAt)}</span>
                    </span>
                  ) : (
                    <span class="muted">none</span>
                  )}
                </td>
                <td>
                  <div class="actions">
                    <a href={paths.token(token.id, 'change')}>Change</a>
                    <form method="post" action={paths.token(token.id, 'validate')}>
                      <Csrf token={csrf} />
                      <button type="submit" class="secondary">
                        Validate
                      </button>
                    </form>
                    {(status?.failed ?? 0) > 0 && (
                      <form method="post" action={paths.token(token.id, 'retry')}>
                        <Csrf token={csrf} />
                        <button type="submit" class="secondary">
                          Retry failed
                        </button>
                      </form>
                    )}
                    <a href={paths.token(token.id, 'delete')}>Delete</a>
                  </div>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    )}
    <h2>This install</h2>
    <dl class="facts">
      <dt>Install UUID</dt>
      <dd class="mono">{install.uuid}</dd>
      <dt>Version reported</dt>
      <dd class="mono">{install.appVersion}</dd>
      <dt>First started</dt>
      <dd>{formatTime(install.createdAt)}</dd>
      <dt>Analytics</dt>
      <dd>
        {install.disabled ? (
          <span class="off">disabled by {install.disabledBy}: nothing is queued or sent</span>
        ) : (
          <span class="on">on: events go to every token with the feature switched on</span>
        )}
      </dd>
      <dt>Waiting to be sent</dt>
      <dd>{install.outboxDepth} events</dd>
      {install.dailyStats && (
        <>
          <dt>Daily stats</dt>
          <dd>
            last sent {install.dailyStats.lastRunAt === null ? 'never' : formatTime(install.dailyStats.lastRunAt)}, next{' '}
            {formatTime(install.dailyStats.nextRunAt)}
            <div class="actions">
              <form method="post" action={paths.statsRun}>
                <Csrf token={csrf} />
                <button type="submit" class="secondary">
                  Send daily stats now
                </button>
              </form>
            </div>
          </dd>
        </>
      )}
    </dl>
  </Layout>
);

/** What the token form shows: the stored token, or what was just submitted (never a secret). */
export interface TokenFormValues {
  name: string;
  measurementId: string;
  sendPageViews: boolean;
  sendTaskEvents: boolean;
  sendDailyStats: boolean;
  /** One regular expression a line. */
  ignorePaths: string;
}

/** The form values of a stored token. */
export function formValuesOf(token: Token): TokenFormValues {
  return {
    name: token.name,
    measurementId: token.measurementId,
    sendPageViews: token.sendPageViews,
    sendTaskEvents: token.sendTaskEvents,
    sendDailyStats: token.sendDailyStats,
    ignorePaths: token.ignorePaths.join('\n'),
  };
}

/** The form values as submitted, to show them back with their problems (the API secret is never shown back). */
export function formValuesFromFields(fields: Record<string, string>): TokenFormValues {
  return {
    name: fields.name ?? '',
    measurementId: fields.measurementId ?? '',
    sendPageViews: fields.sendPageViews === 'on',
    sendTaskEvents: fields.sendTaskEvents === 'on',
    sendDailyStats: fields.sendDailyStats === 'on',
    ignorePaths: fields.ignorePaths ?? '',
  };
}

/** The form values of a token not yet added: every feature on, nothing ignored. */
export const NEW_TOKEN_VALUES: TokenFormValues = {
  name: '',
  measurementId: '',
  sendPageViews: true,
  sendTaskEvents: true,
  sendDailyStats: true,
  ignorePaths: '',
};

/** Props of {@link TokenFormPage}. */
export interface TokenFormPageProps extends PageProps {
  csrf: string;
  disabled: boolean;
  /** The token being changed; absent when adding. */
  token?: Token;
  values: TokenFormValues;
  errors?: Record<string, string>;
}

const Field: FC<PropsWithChildren<{ error?: string; help?: Child }>> = ({ error, help, children }) => (
  <div class={error ? 'field invalid' : 'field'}>
    {children}
    {error && <p class="problem">{error}</p>}
    {help && <p class="help">{help}</p>}
  </div>
);

/** The add and change form of a token. */
export const TokenFormPage: FC<TokenFormPageProps> = ({ paths, csrf, disabled, token, values, errors = {} }) => {
  const hasErrors = Object.keys(errors).length > 0;
  const action = token ? paths.token(token.id, 'change') : paths.addToken;
  const secretNote = token
    ? token.apiSecret === ''
      ? 'No secret is stored. Leave blank to keep it that way.'
      : `A secret is stored (${maskSecret(token.apiSecret)}). Leave blank to keep it.`
    : 'From GA: Admin › Data streams › Measurement Protocol API secrets.';
  return (
    <Layout
      paths={paths}
      title={token ? `Change token: ${token.name}` : 'Add a token'}
      csrf={csrf}
      disabled={disabled}
      error={hasErrors ? `Nothing was saved. ${errors[''] ?? 'Fix the fields marked below.'}` : undefined}
    >
      <form class="card" method="post" action={action}>
        <Csrf token={csrf} />
        <Field error={errors.name}>
          <label for="name">Name</label>
          <input type="text" id="name" name="name" value={values.name} maxlength={100} required />
        </Field>
        <Field error={errors.measurementId} help="G- followed by letters and digits, e.g. G-AB12CD34EF.">
          <label for="measurementId">Measurement id</label>
          <input type="text" id="measurementId" name="measurementId" value={values.measurementId} placeholder="G-XXXXXXXXXX" required />
        </Field>
        <Field error={errors.apiSecret} help={secretNote}>
          <label for="apiSecret">API secret</label>
          <input type="password" id="apiSecret" name="apiSecret" value="" autocomplete="off" />
          {token && token.apiSecret !== '' && (
            <label class="check">
              <input type="checkbox" name="clearApiSecret" /> Remove the stored secret (the relay then skips this token)
            </label>
          )}
        </Field>
        <fieldset>
          <legend>Send to this token</legend>
          {SWITCHES.map((key) => (
            <label class="check">
              <input type="checkbox" id={key} name={key} checked={values[key]} /> {SWITCH_LABEL[key]}
            </label>
          ))}
        </fieldset>
        <Field
          error={errors.ignorePaths}
          help="Regular expressions, one a line, matched against the page path; a page view whose path matches one is not sent to this token. Example: ^/admin/"
        >
          <label for="ignorePaths">Ignore paths</label>
          <textarea id="ignorePaths" name="ignorePaths" rows={5} spellcheck={false}>
            {values.ignorePaths}
          </textarea>
        </Field>
        <p class="actions">
          <button type="submit">Save</button>
          <a class="button secondary" href={paths.tokens}>
            Cancel
          </a>
        </p>
      </form>
    </Layout>
  );
};

/** The confirmation before a token is deleted. */
export const DeletePage: FC<PageProps & { csrf: string; disabled: boolean; token: Token; status: DeliveryStatus | undefined }> = ({
  paths,
  csrf,
  disabled,
  token,
  status,
}) => (
  <Layout paths={paths} title={`Delete token: ${token.name}`} csrf={csrf} disabled={disabled}>
    <form class="card" method="post" action={paths.token(token.id, 'delete')}>
      <Csrf token={csrf} />
      <p>
        Delete the token <strong>{token.name}</strong> (<code>{token.measurementId}</code>)? Nothing more is sent to that
        property.
        {token.id === 1 && ' Token 1 is the project team’s property; once deleted it is not preloaded again.'}
      </p>
      {status && (status.waiting > 0 || status.failed > 0) && (
        <p>
          Its {status.waiting} waiting and {status.failed} failed events are deleted with it.
        </p>
      )}
      <p class="actions">
        <button type="submit" class="danger">
          Yes, delete it
        </button>
        <a class="button secondary" href={paths.tokens}>
          No, keep it
        </a>
      </p>
    </form>
  </Layout>
);

/** What GA's validation endpoint said about a token's samples (or why nothing was sent). */
export const ValidatePage: FC<{
  paths: AdminPaths;
  csrf: string;
  disabled: boolean;
  token: Token;
  results?: ValidationResult[];
  blocker?: string;
}> = ({ paths, csrf, disabled, token, results, blocker }) => (
  <Layout paths={paths} title={`Validate token: ${token.name}`} csrf={csrf} disabled={disabled} error={blocker ? `Not validated: ${blocker}.` : undefined}>
    {!results && !blocker && (
      <form class="card" method="post" action={paths.token(token.id, 'validate')}>
        <Csrf token={csrf} />
        <p>
          Send one sample of each enabled feature to GA’s validation endpoint (<code>/debug/mp/collect</code>) and show what
          GA says about it? GA records nothing from it.
        </p>
        <button type="submit">Validate</button>
      </form>
    )}
    {results && results.length === 0 && <p>Every feature is switched off for this token: there is nothing to validate.</p>}
    {results && results.length > 0 && (
      <>
        <p>
          One sample of each enabled feature was sent to GA’s validation endpoint (<code>/debug/mp/collect</code>); GA
          records nothing from it. GA does not check the API secret there.
        </p>
        <table>
          <thead>
            <tr>
              <th scope="col">Feature</th>
              <th scope="col">GA’s answer</th>
            </tr>
          </thead>
          <tbody>
            {results.map((result) => (
              <tr data-feature={result.feature}>
                <td>{FEATURE_LABEL[result.feature]}</td>
                <td>
                  {result.error ? (
                    <span class="error-text">Could not validate: {result.error}</span>
                  ) : result.validationMessages.length === 0 ? (
                    <span class="on">valid: GA found no problems</span>
                  ) : (
                    <ul class="messages">
                      {result.validationMessages.map((m) => (
                        <li>
                          <code>{m.validationCode}</code> {m.fieldPath && <code>{m.fieldPath}</code>}: {m.description}
                        </li>
                      ))}
                    </ul>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </>
    )}
    <p class="actions">
      <a href={paths.tokens}>Back to the tokens</a>
    </p>
  </Layout>
);

/** The events GA refused for good, with a retry per token. */
export const FailedPage: FC<PageProps & { csrf: string; disabled: boolean; total: number; items: FailedDelivery[]; notice?: string }> = ({
  paths,
  csrf,
  disabled,
  total,
  items,
  notice,
}) => {
  const tokenIds = [...new Map(items.map((item) => [item.tokenId, item.tokenName])).entries()];
  return (
    <Layout paths={paths} title="Failed deliveries" csrf={csrf} disabled={disabled} notice={notice}>
      {total === 0 ? (
        <p>No failed deliveries.</p>
      ) : (
        <>
          <p>
            GA refused these events for good (or they grew older than GA accepts). A retry puts them back in the queue.
            {total > items.length && ` The newest ${items.length} of ${total} are shown.`}
          </p>
          <div class="actions">
            {tokenIds.map(([id, name]) => (
              <form method="post" action={paths.token(id, 'retry')}>
                <Csrf token={csrf} />
                <input type="hidden" name="back" value="failed" />
                <button type="submit" class="secondary">
                  Retry all failed of {name}
                </button>
              </form>
            ))}
          </div>
          <h2>Newest first</h2>
          <table>
            <thead>
              <tr>
                <th scope="col">Token</th>
                <th scope="col">Event</th>
                <th scope="col">Happened</th>
                <th scope="col">Attempts</th>
                <th scope="col">Error</th>
              </tr>
            </thead>
            <tbody>
              {items.map((item) => (
                <tr>
                  <td>{item.tokenName}</td>
                  <td class="mono">{item.event}</td>
                  <td>{formatTime(item.occurredAt)}</td>
                  <td class="num">{item.attempts}</td>
                  <td class="error-text">{item.error}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </Layout>
  );
};

/** A refusal or an error, as a page. */
export const ErrorPage: FC<PageProps & { status: number; message: string; loggedIn: boolean }> = ({ paths, status, message, loggedIn }) => (
  <Layout paths={paths} title={status === 404 ? 'Not found' : status === 403 ? 'Refused' : 'Something went wrong'} error={message}>
    <p>
      {loggedIn ? <a href={paths.tokens}>Back to the tokens</a> : <a href={paths.login}>Log in</a>}
    </p>
  </Layout>
);
