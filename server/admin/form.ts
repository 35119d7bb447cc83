import type { Context } from 'hono';

/**
 * The text fields of a urlencoded or multipart form body; empty for any other body, a malformed one,
 * and file fields (the admin forms have none).
 */
export async function readForm(c: Context): Promise<Record<string, string>> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded') && !type.startsWith('multipart/form-data')) return {};
  let body: Record<string, unknown>;
  try {
    // Hono caches the parsed body, so the CSRF check and the handler read it once between them.
    body = await c.req.parseBody();
  } catch {
    return {};
  }
  const fields: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) if (typeof value === 'string') fields[name] = value;
  return fields;
}

/** One text field of the request's form body, or undefined. */
export async function formField(c: Context, name: string): Promise<string | undefined> {
  return (await readForm(c))[name];
}
