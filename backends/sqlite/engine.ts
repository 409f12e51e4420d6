/**
 * The `sqlite:` engine's entry in the registry: `sqlite:./omniq.db`, `sqlite:///abs/path`,
 * `sqlite::memory:`, or `sqlite:` for `./omniq.db`.
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";
import { urlPath } from "../../src/url.ts";

/** The registry entry of the SQLite engine. */
export const sqliteEngine: EngineEntry = {
  name: "sqlite",
  schemes: ["sqlite"],
  async openUrl(_url, rest) {
    // The path is checked before the engine loads, so a bad URL fails without it.
    const path = rest === "" ? "./omniq.db" : rest === ":memory:" ? ":memory:" : urlPath(rest);
    const { openSqlite } = await import("./mod.ts");
    return await openSqlite(path);
  },
};
