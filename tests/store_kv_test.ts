// The store-level suite on the `kv:` engine (Deno KV, `--unstable-kv`): a fresh KV file in a
// temp directory per case; a second handle opens the same file.

import { openKv } from "../backends/kv/mod.ts";
import { runStoreConformance } from "./store/mod.ts";

runStoreConformance({
  name: "kv store",
  open: async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_store_kv_" });
    const url = `kv:${dir}/omniq.kv`;
    const backend = await openKv(url);
    return {
      backend,
      connect: () => openKv(url),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        await Deno.remove(dir, { recursive: true });
      },
    };
  },
});
