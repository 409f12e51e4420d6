// The conformance suite on the `nats:` engine (NATS JetStream): a fresh name prefix per case
// (its own task bucket, results bucket and event stream), deleted when the case ends. It runs
// twice: with everything on NATS, and with the queue on NATS but results and events in
// memory, which checks that the orchestrator forwards every effect the queue reports.

import { openNats } from "../backends/nats/mod.ts";
import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";
import { testServerUrl } from "./servers.ts";

function natsStore(split: boolean): () => Promise<StoreFixture> {
  return () => {
    const server = testServerUrl("nats");
    const prefix = `t_${crypto.randomUUID().replaceAll("-", "")}`;
    const url = `${server}?prefix=${prefix}`;
    const side = `memory:conformance-${crypto.randomUUID()}`;
    const stores: StoreConfig = split
      ? { queue: url, results: side, events: side }
      : { backend: url };
    return Promise.resolve({
      stores,
      [Symbol.asyncDispose]: async () => {
        const backend = await openNats(url);
        await backend.destroy();
      },
    });
  };
}

runConformance({ name: "nats", store: natsStore(false) });
runConformance({ name: "nats+memory results/events", store: natsStore(true) });
