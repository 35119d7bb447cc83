import type { FC } from 'hono/jsx';
import { featureLabel } from '../../tokens/features.ts';
import type { Token } from '../../tokens/tokens.ts';
import type { AdminPaths } from '../paths.ts';
import type { ValidationResult } from '../validate.ts';
import { Csrf, Layout } from './layout.tsx';

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
                <td>{featureLabel(result.feature)}</td>
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

