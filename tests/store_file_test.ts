// The store-level suite on the `file:` engine: a fresh directory per case; a second handle
// opens the same directory.

import { openFile } from "../backends/file/mod.ts";
import { runStoreConformance } from "./store/mod.ts";

runStoreConformance({
  name: "file store",
  open: async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_store_file_" });
    const url = `file:${dir}/store`;
    const backend = await openFile(url);
    return {
      backend,
      connect: () => openFile(url),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
});
