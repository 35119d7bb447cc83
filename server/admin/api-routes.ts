import { Hono, type Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { z } from 'zod';
import { requireBearer, type CredentialGuard } from '../core/credential-guard.ts';
import { bodyText, parseJsonBody } from '../core/http.ts';
import type { Services } from '../services.ts';
import { parseNewToken, parseTokenPatch, tokenJson } from '../tokens/token-input.ts';
import type { Token } from '../tokens/tokens.ts';
import { adminBodyLimit, adminEnabled, tokenOr404 } from './access.ts';
import { sentRequestsOf } from './sent.ts';
import { deliveryStatuses, failedDeliveries, installInfo } from './status.ts';
import { validateToken, validationBlocker } from './validate.ts';

export const retrySchema = z.strictObject({ ids: z.array(z.number().int().positive()).max(10_000).optional() });

/**
 * The JSON admin API under `/api/admin` (`Authorization: Bearer <ANALYTICS_ADMIN_TOKEN>`): token management,
 * validation against GA's debug endpoint, what was sent to a token, delivery status and retry of failed deliveries.
 */
export function adminApiRoutes(services: Services, guard: CredentialGuard): Hono {
  const app = new Hono();
  const { adminToken } = services.config;
  app.use('*', adminEnabled({ adminToken }));
  app.use('*', adminBodyLimit());
  if (adminToken === undefined) return app;
  app.use(
    '*',
    requireBearer({
      secret: adminToken,
      guard,
      surface: 'api',
      trustProxy: services.config.trustProxy,
      realm: 'analytics admin',
      missing: 'send the admin token as "Authorization: Bearer <ANALYTICS_ADMIN_TOKEN>"',
      wrong: 'wrong admin token',
    }),
  );

  const tokenOf = (c: Context): Promise<Token> => tokenOr404(services.tokens, c.req.param('id'));

  app.get('/tokens', async (c) => c.json({ tokens: (await services.tokens.list()).map(tokenJson) }));

  app.post('/tokens', async (c) => {
    const token = await services.tokens.create(parseNewToken(parseJsonBody(await bodyText(c))));
    services.log.info(`admin: token ${token.id} added`);
    // Where the API was reached, mount prefix included.
    return c.json(tokenJson(token), 201, { Location: `${c.req.path.replace(/\/+$/, '')}/${token.id}` });
  });

  app.get('/tokens/:id', async (c) => c.json(tokenJson(await tokenOf(c))));

  app.patch('/tokens/:id', async (c) => {
    const current = await tokenOf(c);
    const token = await services.tokens.update(current.id, parseTokenPatch(parseJsonBody(await bodyText(c)), current));
    if (!token) throw new HTTPException(404, { message: 'There is no such token (it may have been deleted).' });
    services.log.info(`admin: token ${token.id} changed`);
    return c.json(tokenJson(token));
  });

  app.delete('/tokens/:id', async (c) => {
    const token = await tokenOf(c);
    await services.tokens.delete(token.id);
    services.log.info(`admin: token ${token.id} deleted`);
    return c.body(null, 204);
  });

  app.post('/tokens/:id/validate', async (c) => {
    const token = await tokenOf(c);
    const blocker = validationBlocker(services, token);
    if (blocker) throw new HTTPException(409, { message: blocker });
    return c.json({ results: await validateToken(services, token) });
  });

  // Newest first, each body the exact text GA received; the URL with the secret was never stored.
  app.get('/tokens/:id/sent', async (c) => c.json({ requests: await sentRequestsOf(services, (await tokenOf(c)).id) }));

  app.post('/tokens/:id/retry', async (c) => {
    const token = await tokenOf(c);
    const raw = await bodyText(c);
    const { ids } = retrySchema.parse(raw.trim() === '' ? {} : parseJsonBody(raw));
    return c.json({ retried: await services.relay.retryFailed(token.id, ids) });
  });

  app.get('/failed', async (c) => {
    const limit = Math.min(Math.max(Number.parseInt(c.req.query('limit') ?? '100', 10) || 100, 1), 1000);
    return c.json(await failedDeliveries(services, limit));
  });

  app.post('/stats/run', async (c) => c.json(await services.dailyStats.runNow()));

  app.get('/status', async (c) => {
    const list = await services.tokens.list();
    return c.json({ install: await installInfo(services), tokens: await deliveryStatuses(services, list) });
  });

  return app;
}
