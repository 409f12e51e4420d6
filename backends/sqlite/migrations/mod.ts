/**
 * The numbered migrations of the SQLite schema and the code that applies them. The
 * version a file has reached is `meta.schema_version`; a file made before migrations were
 * numbered holds 1 there, the version of `001_initial.ts`, so it opens as it is. A file of
 * a version this code does not know (a newer OmniQ) is refused, never altered.
 *
 * @module
 */

import type { SqliteDatabase as DatabaseSync } from "../../../src/runtime/types.ts";
import { OmniQError } from "../../../src/errors.ts";
import { initial } from "./001_initial.ts";
import { leanEvents } from "./002_lean_events.ts";
import { queueControls } from "./003_queue_controls.ts";

/** One schema change, applied once, in order. */
export interface Migration {
  /** Its number: one more than the one before. */
  version: number;
  /** A short name, for messages. */
  name: string;
  /** The statements. */
  sql: string;
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [initial, leanEvents, queueControls];

/**
 * Bring a file's schema up to the last migration, inside the caller's write transaction
 * (several processes may open a new file at once: exactly one of them migrates it, and
 * the others find it migrated).
 *
 * @param db The open database, in a write transaction.
 * @param path The file, for messages.
 * @param migrations The migrations to apply (every one by default; tests pass others).
 * @returns The version the file had before, 0 for a new file.
 * @throws {OmniQError} When the file was migrated by a newer OmniQ.
 */
export function migrate(
  db: DatabaseSync,
  path: string,
  migrations: readonly Migration[] = MIGRATIONS,
): number {
  db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get();
  const current = row ? Number(row.value) : 0;
  const latest = migrations.length;
  if (!Number.isInteger(current) || current < 0) {
    throw new OmniQError(
      `sqlite "${path}": meta.schema_version is ${JSON.stringify(row?.value)}; expected a ` +
        "migration number",
    );
  }
  if (current > latest) {
    throw new OmniQError(
      `sqlite "${path}": the database was created by a newer OmniQ (schema version ` +
        `${current}; this version reads up to ${latest}); upgrade OmniQ to open it`,
    );
  }
  // Not wrapped in an error of its own: a lock error must reach the caller's retry as it is.
  for (const m of migrations.slice(current)) db.exec(m.sql);
  if (current < latest) {
    db.prepare(
      `INSERT INTO meta (key, value) VALUES ('schema_version', ?)
       ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ).run(String(latest));
  }
  return current;
}
