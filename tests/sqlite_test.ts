// The conformance suite on the `sqlite:` engine: a fresh database file in a temp directory
// per case. It runs twice: with everything in the file (results and events written in the
// queue's own transactions), and with the queue in SQLite but results and events in a
// memory store, which checks that the orchestrator forwards every effect the queue reports.

import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";

function sqliteStore(split: boolean): () => Promise<StoreFixture> {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq_conformance_" });
    const url = `sqlite:${dir}/omniq.db`;
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

runConformance({ name: "sqlite", store: sqliteStore(false) });
runConformance({ name: "sqlite+memory results/events", store: sqliteStore(true) });
