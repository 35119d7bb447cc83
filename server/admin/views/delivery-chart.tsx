import type { FC } from 'hono/jsx';
import type { Token } from '../../tokens/tokens.ts';
import { HISTORY_HOURS, type DeliveryHistory, type HourBar } from '../delivery-history.ts';

// The drawing's own units (the viewBox); CSS scales the whole to the width it gets.
const BAR = 3;
const LEFT = 44;
const RIGHT = 8;
const LEGEND = 18;
const UP = 52;
const DOWN = 26;
const LABELS = 16;
const WIDTH = LEFT + HISTORY_HOURS * BAR + RIGHT;
const HEIGHT = LEGEND + UP + DOWN + LABELS;
const BASELINE = LEGEND + UP;
const DAY_MS = 24 * 3_600_000;

const INK = '#1d2327';
const MUTED = '#5b6670';
const LINE = '#d5dade';
const DELIVERED = '#1e6b35';
const FAILED = '#a4262c';

const count = (n: number) => n.toLocaleString('en-US');
const plural = (n: number, one: string, many: string) => `${count(n)} ${n === 1 ? one : many}`;
const dayLabel = new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', timeZone: 'UTC' });
const hourLabel = (ms: number) => `${new Date(ms).toISOString().slice(0, 13).replace('T', ' ')}:00 UTC`;

/** The chart's sentence: what a screen reader says for the whole picture. */
export function chartSummary(name: string, history: DeliveryHistory): string {
  return `Deliveries to ${name} in the last 7 days: ${count(history.delivered)} delivered, ${count(history.failed)} failed.`;
}

/** The bar height of `n` on a side whose largest hour is `max` and whose height is `room`: never 0 for a non-zero hour. */
function barHeight(n: number, max: number, room: number): number {
  if (n <= 0 || max <= 0) return 0;
  return Math.max(1, Math.round((n / max) * room * 10) / 10);
}

/** The hour's bars: delivered rise from the baseline (solid), failed hang below it (hatched). */
const Bars: FC<{ bar: HourBar; index: number; maxDelivered: number; maxFailed: number; hatch: string }> = ({ bar, index, maxDelivered, maxFailed, hatch }) => {
  const x = LEFT + index * BAR;
  const up = barHeight(bar.delivered, maxDelivered, UP - 4);
  const down = barHeight(bar.failed, maxFailed, DOWN - 2);
  return (
    <>
      {up > 0 && (
        <rect class="bar-delivered" x={x} y={BASELINE - up} width={BAR - 0.6} height={up} fill={DELIVERED}>
          <title>{`${hourLabel(bar.hour)}: ${plural(bar.delivered, 'event', 'events')} delivered`}</title>
        </rect>
      )}
      {down > 0 && (
        <rect class="bar-failed" x={x} y={BASELINE} width={BAR - 0.6} height={down} fill={`url(#${hatch})`} stroke={FAILED} stroke-width="0.5">
          <title>{`${hourLabel(bar.hour)}: ${plural(bar.failed, 'event', 'events')} failed`}</title>
        </rect>
      )}
    </>
  );
};

/**
 * One token's deliveries per hour over 7 days as inline SVG: no script, no style attribute (the CSP allows
 * neither), told apart without colour by direction and fill, with the numbers as text for screen readers.
 */
export const DeliveryChart: FC<{ token: Pick<Token, 'id' | 'name'>; history: DeliveryHistory }> = ({ token, history }) => {
  const hatch = `hatch-${token.id}`;
  const maxDelivered = Math.max(0, ...history.hours.map((bar) => bar.delivered));
  const maxFailed = Math.max(0, ...history.hours.map((bar) => bar.failed));
  const summary = chartSummary(token.name, history);
  const perDay = history.days.map((day) => `${day.day}: ${count(day.delivered)} delivered, ${count(day.failed)} failed`).join('; ');
  const midnights = history.hours.flatMap((bar, index) => (bar.hour % DAY_MS === 0 ? [{ index, hour: bar.hour }] : []));
  return (
    <figure class="chart" id={`deliveries-token-${token.id}`} data-token={String(token.id)}>
      <figcaption>
        {token.name}: {plural(history.delivered, 'event', 'events')} delivered, {count(history.failed)} failed
      </figcaption>
      <svg xmlns="http://www.w3.org/2000/svg" viewBox={`0 0 ${WIDTH} ${HEIGHT}`} width={WIDTH} height={HEIGHT} role="img" aria-label={summary}>
        <title>{summary}</title>
        <desc>{`Per day (UTC): ${perDay}.`}</desc>
        <defs>
          <pattern id={hatch} patternUnits="userSpaceOnUse" width="4" height="4" patternTransform="rotate(45)">
            <rect width="4" height="4" fill="#fff" />
            <line x1="1" y1="0" x2="1" y2="4" stroke={FAILED} stroke-width="2" />
          </pattern>
        </defs>
        <g font-family="system-ui, sans-serif" font-size="10" fill={MUTED}>
          <rect x={LEFT} y="3" width="10" height="10" fill={DELIVERED} />
          <text x={LEFT + 14} y="12" fill={INK}>
            delivered (above the line)
          </text>
          <rect x={LEFT + 170} y="3" width="10" height="10" fill={`url(#${hatch})`} stroke={FAILED} stroke-width="0.8" />
          <text x={LEFT + 184} y="12" fill={INK}>
            failed (below the line)
          </text>
          {midnights.map(({ index, hour }) => (
            <>
              <line x1={LEFT + index * BAR} y1={LEGEND} x2={LEFT + index * BAR} y2={BASELINE + DOWN} stroke={LINE} stroke-width="1" />
              <text x={LEFT + index * BAR + 2} y={HEIGHT - 4}>
                {dayLabel.format(hour)}
              </text>
            </>
          ))}
          {maxDelivered > 0 && (
            <text x={LEFT - 4} y={LEGEND + 8} text-anchor="end">
              {count(maxDelivered)}
            </text>
          )}
          <text x={LEFT - 4} y={BASELINE + 3} text-anchor="end">
            0
          </text>
          {maxFailed > 0 && (
            <text x={LEFT - 4} y={BASELINE + DOWN} text-anchor="end">
              {count(maxFailed)}
            </text>
          )}
        </g>
        {history.hours.map((bar, index) => (
          <Bars bar={bar} index={index} maxDelivered={maxDelivered} maxFailed={maxFailed} hatch={hatch} />
        ))}
        <line x1={LEFT} y1={BASELINE} x2={WIDTH - RIGHT} y2={BASELINE} stroke={MUTED} stroke-width="1" />
      </svg>
      {/* Wrapped: a table grows to fit its content whatever its width, a div does not. */}
      <div class="visually-hidden">
        <table>
          <caption>{`Deliveries to ${token.name} per day (UTC), last 7 days`}</caption>
          <thead>
            <tr>
              <th scope="col">Day</th>
              <th scope="col">Delivered</th>
              <th scope="col">Failed</th>
            </tr>
          </thead>
          <tbody>
            {history.days.map((day) => (
              <tr>
                <th scope="row">{day.day}</th>
                <td>{day.delivered}</td>
                <td>{day.failed}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </figure>
  );
};

/** The token list's section of charts, one per token, in the list's order. */
export const DeliveryCharts: FC<{ tokens: Token[]; histories: DeliveryHistory[] }> = ({ tokens, histories }) => (
  <section aria-labelledby="deliveries-heading">
    <h2 id="deliveries-heading">Deliveries in the last 7 days</h2>
    <p class="muted">
      One bar per hour (UTC). Events GA took rise above the line (solid); events GA refused for good hang below it
      (hatched). Each side has its own scale: the number at its end is its busiest hour.
    </p>
    <div class="charts">
      {tokens.map((token, i) => {
        const history = histories[i];
        return history ? <DeliveryChart token={token} history={history} /> : null;
      })}
    </div>
  </section>
);
