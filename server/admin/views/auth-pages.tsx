import type { FC } from 'hono/jsx';
import { Csrf, Layout, type PageProps } from './layout.tsx';

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

