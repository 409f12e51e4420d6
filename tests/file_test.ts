// The conformance suite on the `file:` engine: a fresh directory per case. It runs twice:
// with everything in the directory, and with the queue in the directory but results and
// events in a memory store (the orchestrator forwards every effect the queue reports).

import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";

function fileStore(split: boolean): () => Promise<StoreFixture> {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_file_conformance_" });
    const url = `file:${dir}/store`;
    const side = `memory:conformance-${crypto.randomUUID()}`;
    const stores: StoreConfig = split
      ? { queue: url, results: side, events: side }
      : { backend: url };
    return {
      stores,
      [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
    };
  };
}

runConformance({ name: "file", store: fileStore(false) });
runConformance({ name: "file+memory results/events", store: fileStore(true) });
