/**
 * The Redis engine's entry in the registry: `redis://` and `rediss://` URLs, and the
 * object form `{ redis: { host, port, db, prefix, … } }` (the fields of `RedisOptions`).
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";

/** The registry entry of the Redis engine. */
export const redisEngine: EngineEntry = {
  name: "redis",
  schemes: ["redis", "rediss"],
  options: {
    url: "string",
    host: "string",
    port: "port",
    db: "count",
    username: "string",
    password: "string",
    prefix: "string",
    eventsMaxLen: "positive",
    connectTimeout: "positive",
    tls: "boolean",
  },
  async openUrl(url) {
    const { openRedis } = await import("./mod.ts");
    return await openRedis(url);
  },
  async openOptions(options) {
    const { openRedis } = await import("./mod.ts");
    return await openRedis(options);
  },
};
