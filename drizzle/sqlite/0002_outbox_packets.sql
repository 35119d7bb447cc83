ALTER TABLE `outbox` ADD `n` integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `outbox` ADD `events` text;