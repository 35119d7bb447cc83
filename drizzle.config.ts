import { defineConfig } from 'drizzle-kit';

// SQLite, the embedded default. PostgreSQL: drizzle.postgres.config.ts. `npm run db:generate` runs both.
export default defineConfig({
  dialect: 'sqlite',
  schema: './server/store/sqlite/schema.ts',
  out: './drizzle/sqlite',
});
