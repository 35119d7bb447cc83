ALTER TABLE "outbox" ADD COLUMN "n" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "outbox" ADD COLUMN "events" text;