/**
 * The runtime seam: {@linkcode runtime} is the edge for the runtime this process runs on,
 * picked once, at import — Deno where `Deno` is a global, Node otherwise (Bun runs the Node
 * edge). Everything runtime-specific in the library goes through it.
 *
 * @module
 */

import { denoRuntime } from "./deno.ts";
import { nodeRuntime } from "./node.ts";
import type { Runtime } from "./types.ts";

export type * from "./types.ts";

/** The edge of the runtime this process runs on. */
export const runtime: Runtime = "Deno" in globalThis ? denoRuntime : nodeRuntime;

/**
 * A module beside `base` in the same form as `base`: `name.ts` when the library runs from
 * its TypeScript sources (Deno, JSR), `name.js` when it runs from the npm build.
 *
 * @param name The module's name without extension, e.g. `"./thread_entry"`.
 * @param base The calling module's `import.meta.url`.
 * @returns Its URL.
 */
export function siblingModule(name: string, base: string): URL {
  const extension = /\.[cm]?js$/.test(new URL(base).pathname) ? ".js" : ".ts";
  return new URL(name + extension, base);
}
