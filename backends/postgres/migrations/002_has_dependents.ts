/**
 * PostgreSQL migration 2: whether a task has dependents, on its own row
 * (`tasks.has_dependents`), and a trigger that keeps the mark when a `deps` row comes
 * without it. Frozen: a change to the schema is a new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** The `has_dependents` mark and its trigger. */
export const hasDependents: Migration = {
  version: 2,
  name: "has_dependents",
  // On the task's row, not a subquery on deps: an enqueue that adds a dependent writes the
  // row, so a completion waiting on that row's lock sees the mark when it goes on (a
  // subquery would read the snapshot taken before it waited).
  sql: (s) => `
ALTER TABLE ${s}.tasks ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
UPDATE ${s}.tasks SET has_dependents = true
  WHERE id IN (SELECT depends_on FROM ${s}.deps);
-- A process still running the code of version 1 adds deps rows without the mark: set it.
CREATE FUNCTION ${s}.mark_dependency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ${s}.tasks SET has_dependents = true
    WHERE id = NEW.depends_on AND NOT has_dependents;
  RETURN NULL;
END $$;
CREATE TRIGGER deps_mark_dependency AFTER INSERT ON ${s}.deps
  FOR EACH ROW EXECUTE FUNCTION ${s}.mark_dependency();
`,
};
