/**
 * The numbered migrations of the PostgreSQL schema and the code that applies them. A
 * schema records each version it took as a row of its `migrations` table; the ones it
 * lacks run in order, in one transaction. A schema migrated by a newer OmniQ (a version
 * this code does not know) is refused, never altered.
 *
 * @module
 */

import { OmniQError } from "../../../src/errors.ts";
import { type Connection, run, transaction } from "../connection.ts";
import { describeTarget } from "../options.ts";
import { initial } from "./001_initial.ts";
import { hasDependents } from "./002_has_dependents.ts";
import { leanEvents } from "./003_lean_events.ts";
import { queueControls } from "./004_queue_controls.ts";

/** One schema change, applied once, in order. */
export interface Migration {
  /** Its number: one more than the one before. */
  version: number;
  /** A short name, for messages. */
  name: string;
  /** The statements, given the quoted schema name. */
  sql: (schema: string) => string;
}

/** Every migration, in order. */
export const MIGRATIONS: readonly Migration[] = [
  initial,
  hasDependents,
  leanEvents,
  queueControls,
];

/**
 * Create the schema and apply the migrations it lacks, one process at a time: the
 * transaction holds an advisory lock of the schema, so of several processes opening a new
 * database at once, the first creates it and the rest find it made.
 *
 * @param c The connection.
 * @param migrations The migrations to apply (every one by default; tests pass others).
 * @returns The version the schema had before, 0 for a new one.
 * @throws {OmniQError} When the schema was migrated by a newer OmniQ.
 */
export function migrate(
  c: Connection,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number> {
  const s = c.s;
  return transaction(c.sql, async (tx) => {
    await run(tx, "SELECT pg_advisory_xact_lock($1, 0)", [c.lockSpace]);
    // Looked up first: CREATE … IF NOT EXISTS still needs the CREATE right, and a user
    // with rights on the tables of a migrated schema alone may open it.
    const [found] = await run(
      tx,
      `SELECT to_regnamespace($1) IS NOT NULL AS schema,
         to_regclass($2) IS NOT NULL AS migrations`,
      [s, `${s}.migrations`],
    );
    if (!found.schema) await tx.unsafe(`CREATE SCHEMA ${s}`);
    if (!found.migrations) {
      await tx.unsafe(
        `CREATE TABLE ${s}.migrations (
           version integer PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
    }
    const rows = await run(tx, `SELECT coalesce(max(version), 0) AS v FROM ${s}.migrations`);
    const current = Number(rows[0].v);
    const latest = migrations.length;
    if (current > latest) {
      throw new OmniQError(
        `${describeTarget(c.options)}: the schema was migrated by a newer OmniQ (version ` +
          `${current}; this version knows up to ${latest}); upgrade OmniQ to open it`,
      );
    }
    for (const m of migrations.slice(current)) {
      await tx.unsafe(m.sql(s));
      await run(tx, `INSERT INTO ${s}.migrations (version) VALUES ($1)`, [m.version]);
    }
    return current;
  });
}
