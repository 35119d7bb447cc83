CREATE TABLE `admin_sessions` (
	`id_hash` text PRIMARY KEY NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `drop_counts` (
	`reason` text NOT NULL,
	`event` text NOT NULL,
	`n` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`reason`, `event`)
);
--> statement-breakpoint
CREATE TABLE `sent_requests` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`token_id` integer NOT NULL,
	`at` integer NOT NULL,
	`status` integer NOT NULL,
	`events` integer NOT NULL,
	`body` text NOT NULL,
	FOREIGN KEY (`token_id`) REFERENCES `tokens`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `sent_requests_token` ON `sent_requests` (`token_id`,`id`);--> statement-breakpoint
ALTER TABLE `install` ADD `signing_secret` text;--> statement-breakpoint
ALTER TABLE `install` ADD `tokens_version` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tokens` ADD `held_until` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tokens` ADD `failures` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tokens` ADD `claimed_by` text;--> statement-breakpoint
ALTER TABLE `tokens` ADD `lease_until` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tokens` ADD `lease_due` integer;--> statement-breakpoint
ALTER TABLE `tokens` ADD `lease_id` integer;