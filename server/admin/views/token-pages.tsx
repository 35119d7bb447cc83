import type { Child, FC, PropsWithChildren } from 'hono/jsx';
import { maskSecret } from '../../core/secrets.ts';
import { FEATURES, featureLabel, featureOfEvent } from '../../tokens/features.ts';
import type { Token } from '../../tokens/tokens.ts';
import type { DeliveryHistory } from '../delivery-history.ts';
import type { DeliveryStatus, InstallInfo } from '../status.ts';
import type { TokenFormValues } from '../token-form.ts';
import { DeliveryCharts } from './delivery-chart.tsx';
import { Csrf, formatTime, Layout, OnOff, type PageProps } from './layout.tsx';

/** Why events were dropped, in words. */
const DROP_REASONS: Record<string, string> = {
  'outbox-full': 'the outbox was full (ANALYTICS_OUTBOX_MAX); page views go first',
  expired: "older than GA's 72 hours",
  'switched-off': 'the feature was switched off on the token',
};

/** Props of {@link TokenListPage}. */
export interface TokenListPageProps extends PageProps {
  csrf: string;
  install: InstallInfo;
  tokens: Token[];
  statuses: DeliveryStatus[];
  /** Each token's deliveries per hour over 7 days, in the tokens' order. */
  histories: DeliveryHistory[];
  failedTotal: number;
  notice?: string;
}

/** The token list: switches and delivery status per token, and the install's identity. */
export const TokenListPage: FC<TokenListPageProps> = ({ paths, csrf, install, tokens, statuses, histories, failedTotal, notice }) => (
  <Layout
    paths={paths}
    title="Analytics tokens"
    csrf={csrf}
    disabled={install.disabled}
    notice={notice}
    error={install.storeTrouble ? `The database cannot be written right now: ${install.storeTrouble}. Hits and events are answered 503 until it can; nothing answered 204 before is lost.` : undefined}
  >
    <p class="actions">
      <a class="button" href={paths.addToken}>
        Add a token
      </a>
      {failedTotal > 0 && (
        <a href={paths.failed}>
          {failedTotal} failed {failedTotal === 1 ? 'delivery' : 'deliveries'}
        </a>
      )}
      <a href={paths.about}>What is sent, and how to opt out</a>
    </p>
    {tokens.length === 0 ? (
      <p>No tokens: nothing is sent anywhere.</p>
    ) : (
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Measurement id</th>
            {FEATURES.map(({ label }) => (
              <th scope="col">{label}</th>
            ))}
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
                {FEATURES.map(({ switch: key }) => (
                  <td data-switch={key}>
                    <OnOff on={token[key]} />
                  </td>
                ))}
                <td>
                  {status?.skipped ? (
                    <span class="skipped">skipped: {status.skipped}</span>
                  ) : (
                    <span>
                      {status?.heldUntil ? `held until ${formatTime(status.heldUntil)} (GA is failing)` : 'sending'}
                      <br />
                      <span class="muted">last delivery {formatTime(status?.lastDeliveredAt)}</span>
                    </span>
                  )}
                  {status?.unusableIgnorePaths.map((problem) => (
                    <p class="error-text">Ignore path unusable, so it matches every path (no page view is sent here): {problem}</p>
                  ))}
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
                    <a href={paths.token(token.id, 'sent')}>Sent</a>
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
    {tokens.length > 0 && <DeliveryCharts tokens={tokens} histories={histories} />}
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
      <dt>Dropped without being sent</dt>
      <dd>
        {install.dropped.length === 0 ? (
          'none'
        ) : (
          <ul class="messages">
            {install.dropped.map((drop) => (
              <li>
                {drop.count} {featureLabel(featureOfEvent(drop.event)).toLowerCase()} ({drop.event}): {DROP_REASONS[drop.reason] ?? drop.reason}
              </li>
            ))}
          </ul>
        )}
      </dd>
      {(
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
          {FEATURES.map(({ switch: key, label }) => (
            <label class="check">
              <input type="checkbox" id={key} name={key} checked={values[key]} /> {label}
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

