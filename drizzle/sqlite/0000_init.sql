CREATE TABLE `delivery_stats` (
	`token_id` integer NOT NULL,
	`hour` integer NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`token_id`, `hour`),
	FOREIGN KEY (`token_id`) REFERENCES `tokens`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `host_stats` (
	`id` integer PRIMARY KEY NOT NULL,
	`users` integer NOT NULL,
	`tokens` integer NOT NULL,
	`apps` text NOT NULL,
	`updated_at` integer NOT NULL,
	CONSTRAINT "host_stats_single_row" CHECK("host_stats"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE `install` (
	`id` integer PRIMARY KEY NOT NULL,
	`uuid` text NOT NULL,
	`created_at` integer NOT NULL,
	`last_daily_stats_at` integer,
	CONSTRAINT "install_single_row" CHECK("install"."id" = 1)
);
--> statement-breakpoint
CREATE TABLE `outbox` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`token_id` integer NOT NULL,
	`name` text NOT NULL,
	`params` text NOT NULL,
	`device` text,
	`device_key` text DEFAULT '' NOT NULL,
	`occurred_at` integer NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_attempt_at` integer NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`last_error` text,
	FOREIGN KEY (`token_id`) REFERENCES `tokens`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `outbox_due` ON `outbox` (`status`,`token_id`,`next_attempt_at`);--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`measurement_id` text NOT NULL,
	`api_secret` text DEFAULT '' NOT NULL,
	`send_daily_stats` integer DEFAULT true NOT NULL,
	`send_task_events` integer DEFAULT true NOT NULL,
	`send_page_views` integer DEFAULT true NOT NULL,
	`ignore_paths` text DEFAULT '[]' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_delivered_at` integer,
	`last_error` text,
	`last_error_at` integer
);
