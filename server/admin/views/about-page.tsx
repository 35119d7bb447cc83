import type { FC } from 'hono/jsx';
import type { AboutData, AboutFeature, AboutField } from '../about.ts';
import { Layout, type PageProps } from './layout.tsx';

/** The fields of the whole request (no event column) or of each event, with example values and meanings. */
const FieldTable: FC<{ caption: string; groups: Array<{ event?: string; fields: AboutField[] }> }> = ({ caption, groups }) => {
  const perEvent = groups.some((group) => group.event !== undefined);
  return (
    <table class="fields">
      <caption>{caption}</caption>
      <thead>
        <tr>
          {perEvent && <th scope="col">Event</th>}
          <th scope="col">Field</th>
          <th scope="col">In the example</th>
          <th scope="col">What it is</th>
        </tr>
      </thead>
      <tbody>
        {groups.map(({ event, fields }) =>
          fields.map((field) => (
            <tr data-field={field.path}>
              {perEvent && <td class="mono">{event}</td>}
              <td class="mono">{field.path}</td>
              <td>
                <code>{JSON.stringify(field.example)}</code>
              </td>
              <td>{field.meaning ?? <span class="muted">not described yet</span>}</td>
            </tr>
          )),
        )}
      </tbody>
    </table>
  );
};

const FeatureSection: FC<{ paths: PageProps['paths']; feature: AboutFeature; hostStatsKnown: boolean }> = ({ paths, feature, hostStatsKnown }) => (
  <section class="feature" id={`feature-${feature.feature}`} aria-labelledby={`feature-${feature.feature}-title`}>
    <h2 id={`feature-${feature.feature}-title`}>{feature.label}</h2>
    <dl class="facts">
      <dt>When</dt>
      <dd>{feature.trigger}</dd>
      <dt>GA events</dt>
      <dd class="mono">{feature.events.join(', ')}</dd>
      <dt>Goes to</dt>
      <dd>
        {feature.recipients.length === 0 ? (
          <span>no token has this feature on: nothing of this kind is sent</span>
        ) : (
          <ul class="messages">
            {feature.recipients.map((token) => (
              <li>
                <a href={paths.token(token.id, 'change')}>{token.name}</a> (<code>{token.measurementId}</code>)
                {token.skipped && <span class="skipped"> skipped by the relay: {token.skipped}</span>}
              </li>
            ))}
          </ul>
        )}
      </dd>
    </dl>
    <FieldTable caption="The whole request" groups={[{ fields: feature.requestFields }]} />
    <FieldTable caption="Each event" groups={feature.eventFields} />
    {feature.feature === 'dailyStats' && !hostStatsKnown && (
      <p class="muted">
        The host has not sent its numbers yet (<code>PUT /api/stats</code>), so the numbers and app names in this example
        are made up, and until it does a daily run sends the phone-in (<code>existence</code>) alone.
      </p>
    )}
    <details open={feature.feature === 'pageViews'}>
      <summary>Example request, built just now by the relay’s own code</summary>
      {feature.examples.map((json) => (
        <pre class="json">{json}</pre>
      ))}
    </details>
  </section>
);

/** What leaves the install at all, per feature, with live examples, and every way to stop it. */
export const AboutPage: FC<PageProps & { csrf: string; data: AboutData }> = ({ paths, csrf, data }) => (
  <Layout paths={paths} title="What is sent" csrf={csrf} disabled={data.disabled}>
    <p>
      This install reports three kinds of data, each switchable per token, to the Google Analytics 4 properties on the{' '}
      <a href={paths.tokens}>token list</a>. Every field a request carries is listed below, read off example requests
      built just now by the same code the relay sends with, from this install’s identity (<code>{data.uuid}</code>) and
      version (<code>{data.appVersion}</code>). What actually went to a token is on its “Sent” page.
    </p>
    <dl class="facts">
      <dt>Where it goes</dt>
      <dd>
        <code>POST {data.gaUrl}/mp/collect?measurement_id=…&amp;api_secret=…</code>, from this server; the measurement id and
        API secret in the URL only say which property and that it may write there.
      </dd>
      <dt>Page origin</dt>
      <dd>
        Page views are reported at <code>{data.pageOrigin}</code> followed by the path (ANALYTICS_PAGE_ORIGIN): the site’s
        real host name is not sent unless the owner sets it.
      </dd>
      <dt>Never sent</dt>
      <dd>
        Visitors’ IP addresses, cookies (none are set), the User-Agent string itself, query strings and fragments of page
        addresses, e-mail addresses found in paths and titles, error messages. GA does see this server’s own address, as
        the receiver of any request does.
      </dd>
    </dl>
    {data.features.map((feature) => (
      <FeatureSection paths={paths} feature={feature} hostStatsKnown={data.hostStatsKnown} />
    ))}
    <h2 id="opt-out">How to opt out</h2>
    <ol>
      <li>
        <strong>Remove the script tag</strong> from a site’s pages: that site sends no more page views.
      </li>
      <li>
        <strong>Untick a feature on a token</strong> (its Change page): that kind of data no longer goes to that property;
        events of it already waiting are dropped.
      </li>
      <li>
        <strong>Delete the token</strong>: nothing more goes to that property, and its waiting events go with it.
      </li>
      <li>
        <strong>
          Set <code>ANALYTICS_DISABLED=true</code>
        </strong>{' '}
        and restart: nothing is queued or sent to anyone, not even a validation sample.{' '}
        {data.disabled ? <span class="on">This install has it set now.</span> : <span class="muted">This install does not have it set.</span>}
      </li>
    </ol>
    <h3>In the browser</h3>
    <p>The snippet sends nothing at all from a browser whose user:</p>
    <ul>
      <li>
        sent <strong>Do-Not-Track</strong> (<code>navigator.doNotTrack</code> is <code>"1"</code>),
      </li>
      <li>
        sent <strong>Global Privacy Control</strong> (<code>navigator.globalPrivacyControl</code>),
      </li>
      <li>
        or set <code>localStorage['analytics:optout'] = '1'</code> for the site.
      </li>
    </ul>
  </Layout>
);
