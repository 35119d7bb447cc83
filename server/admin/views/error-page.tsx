import type { FC } from 'hono/jsx';
import { Layout, type PageProps } from './layout.tsx';

/** A refusal or an error, as a page. */
export const ErrorPage: FC<PageProps & { status: number; message: string; loggedIn: boolean }> = ({ paths, status, message, loggedIn }) => (
  <Layout paths={paths} title={status === 404 ? 'Not found' : status === 403 ? 'Refused' : 'Something went wrong'} error={message}>
    <p>
      {loggedIn ? <a href={paths.tokens}>Back to the tokens</a> : <a href={paths.login}>Log in</a>}
    </p>
  </Layout>
);
