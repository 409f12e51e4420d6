// The store-level suite on the `nats:` engine (NATS JetStream): a fresh name prefix per case
// (its own task bucket, results bucket and event stream, deleted when the case ends); a
// second handle opens the same prefix.
//
// The server comes from OMNIQ_TEST_NATS_URL (tests/run.ts starts one and sets it).

import { openNats } from "../backends/nats/mod.ts";
import { testServerUrl } from "./servers.ts";
import { runStoreConformance } from "./store/mod.ts";

testServerUrl("nats"); // no server: fail now, with the reason, instead of in every case
runStoreConformance({
  name: "nats store",
  open: async () => {
    const prefix = `st_${crypto.randomUUID().replaceAll("-", "")}`;
    const url = `${testServerUrl("nats")}?prefix=${prefix}`;
    const backend = await openNats(url);
    return {
      backend,
      connect: () => openNats(url),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        // A fresh handle deletes the store: the case may have closed its own.
        await (await openNats(url)).destroy();
      },
    };
  },
});
