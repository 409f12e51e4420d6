// The store-level suite on the `sqlite:` engine: a fresh database file in a temp directory
// per case; a second handle opens the same file.

import { openSqlite } from "../backends/sqlite/mod.ts";
import { runStoreConformance } from "./store/mod.ts";

runStoreConformance({
  name: "sqlite store",
  open: async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_store_sqlite_" });
    const path = `${dir}/omniq.db`;
    const backend = await openSqlite(path);
    return {
      backend,
      connect: () => openSqlite(path),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
});
