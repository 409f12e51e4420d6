/**
 * The `memory:` engine's entry in the registry: `memory:` is a fresh store, `memory:name`
 * one shared by every handle of this process that names it.
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";

/** The registry entry of the memory engine. */
export const memoryEngine: EngineEntry = {
  name: "memory",
  schemes: ["memory"],
  async openUrl(_url, rest) {
    const { openMemory } = await import("./mod.ts");
    return openMemory(rest === "" ? undefined : rest);
  },
};
