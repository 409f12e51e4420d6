/**
 * The SQLite engine's result and event stores, in the same file as its queue.
 *
 * @module
 */

import type {
  EventQuery,
  EventStore,
  NewEvent,
  ResultStore,
  StoredEvent,
  StoredResult,
} from "../../src/backend.ts";
import { eventWhere, questionMarks } from "../sql/filters.ts";
import { toEvent, toResult } from "../sql/rows.ts";
import type { Connection } from "./connection.ts";
import * as q from "./queries.ts";
import { codec, insertEvent, putResult } from "./table.ts";

/** The result store of a SQLite engine. */
export class SqliteResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  put(results: StoredResult[]): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      for (const r of results) putResult(c, r);
    });
  }

  get(taskId: string): Promise<StoredResult | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(q.GET_RESULT).get(taskId, Date.now());
      return row ? toResult(row, codec) : undefined;
    });
  }

  delete(taskIds: string[]): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      for (const id of taskIds) c.sql(q.DELETE_RESULT).run(id);
    });
  }

  sweep(now: number): Promise<number> {
    const c = this.#c;
    return c.write(() => Number(c.sql(q.SWEEP_RESULTS).run(now).changes));
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The event store of a SQLite engine. */
export class SqliteEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  append(events: NewEvent[]): Promise<StoredEvent[]> {
    const c = this.#c;
    return c.write(() => events.map((e) => insertEvent(c, e)));
  }

  query(query: EventQuery): Promise<StoredEvent[]> {
    const c = this.#c;
    const p = questionMarks();
    let where: string | undefined;
    try {
      where = eventWhere(query, p, "sqlite");
    } catch (error) {
      return Promise.reject(error);
    }
    if (where === undefined) return c.retry(() => []);
    // SQLite reads a negative LIMIT as none.
    const sql = `SELECT * FROM events ${where} ORDER BY id LIMIT ${p.one(query.limit ?? -1)}`;
    const params = p.values as (string | number)[];
    return c.retry(() => c.sql(sql).all(...params).map((row) => toEvent(row, codec)));
  }

  sweep(before: number): Promise<number> {
    const c = this.#c;
    return c.write(() => Number(c.sql(q.SWEEP_EVENTS).run(before).changes));
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
