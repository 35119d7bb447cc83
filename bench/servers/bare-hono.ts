// Baseline for the benchmark: a bare Hono app on @hono/node-server that reads the hit and answers 204.
import { serve } from '@hono/node-server';
import { Hono } from 'hono';

const app = new Hono();
app.post('/collect', async (c) => {
  // Read the body as any real handler must, so the baseline does the same unavoidable work.
  await c.req.text();
  return c.body(null, 204);
});

serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, (info) => {
  console.log(`listening on http://127.0.0.1:${info.port}`);
});
