/**
 * The `kv:` engine's entry in the registry: `kv:./omniq.kv`, `kv::memory:`, `kv:` for
 * Deno's default database (the URL is parsed by the engine).
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";

/** The registry entry of the Deno KV engine. */
export const kvEngine: EngineEntry = {
  name: "kv",
  schemes: ["kv"],
  async openUrl(url) {
    const { openKv } = await import("./mod.ts");
    return await openKv(url);
  },
};
