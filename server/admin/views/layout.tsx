import { createHash } from 'node:crypto';
import type { FC, PropsWithChildren } from 'hono/jsx';
import type { AdminPaths } from '../paths.ts';
import { CSRF_FIELD } from '../session.ts';

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
.visually-hidden { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; border: 0; overflow: hidden; clip: rect(0 0 0 0); clip-path: inset(50%); white-space: nowrap; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); gap: 1rem; }
figure.chart { position: relative; margin: 0; background: #fff; border: 1px solid var(--line); padding: .5rem .75rem .25rem; }
figure.chart figcaption { font-weight: 600; margin: 0 0 .25rem; }
figure.chart svg { display: block; width: 100%; height: auto; }
caption { text-align: left; font-weight: 600; padding: .4rem 0; }
.sent-request, section.feature { background: #fff; border: 1px solid var(--line); padding: .75rem 1rem; margin: 0 0 1rem; }
.sent-request h2 { font-size: 1rem; margin: 0 0 .5rem; }
.sent-request h3 { font-size: .9rem; margin: .5rem 0 .25rem; color: var(--muted); }
.sent-request table, section.feature table { margin: .5rem 0; }
section.feature h2 { margin-top: .25rem; }
table.fields td.mono { white-space: nowrap; }
dl.params { display: grid; grid-template-columns: max-content 1fr; gap: 0 .75rem; margin: 0; }
dl.params dt { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: .9em; color: var(--muted); }
dl.params dd { margin: 0; }
pre.json { background: #f3f5f7; border: 1px solid var(--line); padding: .5rem .75rem; margin: .5rem 0 0; overflow-x: auto; font-size: .85rem; white-space: pre-wrap; overflow-wrap: anywhere; }
summary { cursor: pointer; color: var(--accent); margin: .5rem 0 0; }
`;

const STYLE_HASH = `sha256-${createHash('sha256').update(STYLE).digest('base64')}`;

/** The pages' Content-Security-Policy: no script at all, only the one style sheet, forms only to us. */
export const PAGE_CSP = `default-src 'none'; style-src '${STYLE_HASH}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`;

/** A time for people: UTC, to the minute. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return 'never';
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** The hidden field that carries the CSRF token of a form. */
export const Csrf: FC<{ token: string }> = ({ token }) => <input type="hidden" name={CSRF_FIELD} value={token} />;

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

/** Every page's frame: the menu (when logged in), the banners, the title. */
export const Layout: FC<PropsWithChildren<LayoutProps>> = ({ paths, title, csrf, disabled, notice, error, children }) => (
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
            <a href={paths.about}>What is sent</a>
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

/** A switch's state in words. */
export const OnOff: FC<{ on: boolean }> = ({ on }) => (on ? <span class="on">on</span> : <span class="off">off</span>);

