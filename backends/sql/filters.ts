/**
 * The `WHERE` clauses of `list` (tasks) and `query` (events), built once for the SQL
 * engines; each engine says how it writes a parameter and a list of them.
 *
 * @module
 */

import type { EventQuery } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import type { ListOptions } from "../../src/types.ts";

/** How an engine writes parameters into SQL text, collecting their values. */
export interface Params {
  /** The values so far, in placeholder order. */
  readonly values: unknown[];
  /** A placeholder for one value. */
  one(value: unknown): string;
  /** A parenthesised set for `IN`, of any number of strings. */
  list(values: string[]): string;
}

/** Positional `?` placeholders (SQLite). */
export function questionMarks(): Params {
  const values: unknown[] = [];
  return {
    values,
    one(value) {
      values.push(value);
      return "?";
    },
    list(items) {
      values.push(...items);
      return `(${items.map(() => "?").join(", ")})`;
    },
  };
}

/**
 * Numbered `$n` placeholders (PostgreSQL). A list is one JSON parameter, so the statement's
 * text (and its prepared plan) does not change with the list's length.
 */
export function numbered(): Params {
  const values: unknown[] = [];
  return {
    values,
    one(value) {
      values.push(value);
      return `$${values.length}`;
    },
    list(items) {
      values.push(JSON.stringify(items));
      return `(SELECT jsonb_array_elements_text($${values.length}::text::jsonb))`;
    },
  };
}

/** The conditions of a task list; `undefined` when it can match nothing (no states). */
export function taskWhere(filter: ListOptions, p: Params): string | undefined {
  const where: string[] = [];
  if (filter.state !== undefined) {
    const states = Array.isArray(filter.state) ? filter.state : [filter.state];
    if (states.length === 0) return undefined;
    where.push(`state IN ${p.list(states)}`);
  }
  if (filter.queue !== undefined) where.push(`queue = ${p.one(filter.queue)}`);
  if (filter.task !== undefined) where.push(`task = ${p.one(filter.task)}`);
  if (filter.since !== undefined) where.push(`created_at >= ${p.one(Number(filter.since))}`);
  if (filter.until !== undefined) where.push(`created_at < ${p.one(Number(filter.until))}`);
  return where.length ? `WHERE ${where.join(" AND ")}` : "";
}

/**
 * The conditions of an event query; `undefined` when it can match nothing (no types).
 *
 * @param engine The engine's name, for the message about a foreign `after` id.
 * @throws {OmniQError} When `after` is not an event id of this store (an integer).
 */
export function eventWhere(query: EventQuery, p: Params, engine: string): string | undefined {
  const where: string[] = [];
  if (query.taskId !== undefined) where.push(`task_id = ${p.one(query.taskId)}`);
  if (query.queue !== undefined) where.push(`queue = ${p.one(query.queue)}`);
  if (query.type !== undefined) {
    const types = Array.isArray(query.type) ? query.type : [query.type];
    if (types.length === 0) return undefined;
    where.push(`type IN ${p.list(types)}`);
  }
  if (query.since !== undefined) where.push(`at >= ${p.one(query.since)}`);
  if (query.until !== undefined) where.push(`at < ${p.one(query.until)}`);
  if (query.after !== undefined) {
    const after = Number(query.after);
    if (!Number.isSafeInteger(after)) {
      throw new OmniQError(
        `after: expected an event id of this ${engine} store (an integer), got ` +
          `"${query.after}"`,
      );
    }
    where.push(`id > ${p.one(after)}`);
  }
  return where.length ? `WHERE ${where.join(" AND ")}` : "";
}
