// The conformance suite on the `kv:` engine (Deno KV, `--unstable-kv`): a fresh KV file in a
// temp directory per case. It runs twice: with everything in KV (results and events written
// in the queue's own commits), and with the queue in KV but results and events in memory,
// which checks that the orchestrator forwards every effect the queue reports.

import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";

function kvStore(split: boolean): () => Promise<StoreFixture> {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_conformance_kv_" });
    const url = `kv:${dir}/omniq.kv`;
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

runConformance({ name: "kv", store: kvStore(false) });
runConformance({ name: "kv+memory results/events", store: kvStore(true) });
