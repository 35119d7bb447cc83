import type { FC } from 'hono/jsx';
import type { FailedDelivery } from '../status.ts';
import { Csrf, formatTime, Layout, type PageProps } from './layout.tsx';

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

