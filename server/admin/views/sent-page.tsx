import type { FC } from 'hono/jsx';
import type { Token } from '../../tokens/tokens.ts';
import type { Leaf } from '../payload-fields.ts';
import { SENT_REQUESTS_SHOWN, type ReadableSentRequest, type SentOutcome } from '../sent.ts';
import { Layout, type PageProps } from './layout.tsx';

/** A time for people, to the second: requests of one round are seconds apart. */
function formatSecond(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

const OUTCOMES: Record<SentOutcome, { text: string; class: string }> = {
  delivered: { text: 'delivered', class: 'on' },
  retry: { text: 'not taken this time: sent again later', class: 'skipped' },
  failed: { text: 'refused for good: kept as failed', class: 'off' },
};

/** A value as it stood in the JSON: strings quoted, so an empty string and a missing one differ. */
const JsonValue: FC<{ value: Leaf['value'] }> = ({ value }) => <code>{JSON.stringify(value)}</code>;

/** Fields as a list of name and value. */
const Fields: FC<{ leaves: Leaf[]; strip?: string }> = ({ leaves, strip = '' }) => (
  <dl class="params">
    {leaves.map((leaf) => (
      <>
        <dt>{leaf.path.startsWith(strip) ? leaf.path.slice(strip.length) : leaf.path}</dt>
        <dd>
          <JsonValue value={leaf.value} />
        </dd>
      </>
    ))}
  </dl>
);

const SentRequestView: FC<{ request: ReadableSentRequest; index: number }> = ({ request, index }) => {
  const outcome = OUTCOMES[request.outcome];
  const { parts } = request;
  return (
    <section class="sent-request" id={`sent-${index + 1}`} aria-labelledby={`sent-${index + 1}-title`}>
      <h2 id={`sent-${index + 1}-title`}>
        {formatSecond(request.at)} · {request.events} {request.events === 1 ? 'event' : 'events'} · GA answered{' '}
        <span class={outcome.class}>{request.status}</span> <span class="muted">({outcome.text})</span>
      </h2>
      {parts ? (
        <>
          <h3>The whole request</h3>
          <Fields leaves={parts.request} />
          <table>
            <caption>Events</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">Happened</th>
                <th scope="col">Parameters</th>
              </tr>
            </thead>
            <tbody>
              {parts.events.map((event) => (
                <tr>
                  <td class="mono">{event.name}</td>
                  <td>{event.timestampMicros === undefined ? <span class="muted">not given</span> : formatSecond(event.timestampMicros / 1000)}</td>
                  <td>
                    <Fields leaves={event.leaves.filter((leaf) => leaf.path !== 'name' && leaf.path !== 'timestamp_micros')} strip="params." />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : (
        <p class="error-text">The stored text is not JSON; it is shown below as it went.</p>
      )}
      <details>
        <summary>The exact JSON GA received</summary>
        <pre class="json">{request.body}</pre>
      </details>
    </section>
  );
};

/** What went to one token: its last requests, newest first, each readable and as the exact text GA received. */
export const SentPage: FC<PageProps & { csrf: string; disabled: boolean; token: Token; requests: ReadableSentRequest[]; skipped: string | undefined }> = ({
  paths,
  csrf,
  disabled,
  token,
  requests,
  skipped,
}) => (
  <Layout paths={paths} title={`Sent to ${token.name}`} csrf={csrf} disabled={disabled}>
    <p>
      The last requests that went to <code>{token.measurementId}</code>, newest first (the last {SENT_REQUESTS_SHOWN} are
      kept). Each went to GA’s <code>/mp/collect</code> with the measurement id and the API secret in its URL; the URL
      is not kept, so the secret is not shown. Everything else GA received is below. <a href={paths.about}>What is sent, and why</a>.
    </p>
    {skipped && <p class="skipped">The relay skips this token ({skipped}): nothing is sent to it.</p>}
    {requests.length === 0 ? (
      <p>Nothing has been sent to this token yet.</p>
    ) : (
      requests.map((request, index) => <SentRequestView request={request} index={index} />)
    )}
    <p class="actions">
      <a href={paths.tokens}>Back to the tokens</a>
    </p>
  </Layout>
);
