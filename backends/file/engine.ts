/**
 * The `file:` engine's entry in the registry: `file:./dir`, `file:///abs/dir`,
 * `file://localhost/abs/dir`, or `file:` for `./omniq-data`.
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";
import { urlPath } from "../../src/url.ts";

/** The registry entry of the file engine. */
export const fileEngine: EngineEntry = {
  name: "file",
  schemes: ["file"],
  async openUrl(_url, rest) {
    const path = rest === ""
      ? "./omniq-data"
      : urlPath(rest.startsWith("//localhost/") ? rest.slice(11) : rest);
    const { openFile } = await import("./mod.ts");
    return await openFile(path);
  },
};
