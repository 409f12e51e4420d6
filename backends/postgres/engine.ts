/**
 * The PostgreSQL engine's entry in the registry: `postgres://` and `postgresql://` URLs,
 * and the object form `{ postgres: { host, port, database, … } }` (the fields of
 * `PostgresOptions`).
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";

/** The registry entry of the PostgreSQL engine. */
export const postgresEngine: EngineEntry = {
  name: "postgres",
  schemes: ["postgres", "postgresql"],
  options: {
    url: "string",
    host: "string",
    port: "port",
    database: "string",
    user: "string",
    password: "string",
    schema: "string",
    pool: "positive",
    connectTimeout: "positive",
    ssl: "ssl",
  },
  async openUrl(url) {
    const { openPostgres } = await import("./mod.ts");
    return await openPostgres(url);
  },
  async openOptions(options) {
    const { openPostgres } = await import("./mod.ts");
    return await openPostgres(options);
  },
};
