// The conformance suite on the `redis:` engine: a fresh key prefix per case (its keys are
// deleted when the case ends). It runs twice: with everything in Redis (results and events
// written by the queue's own scripts), and with the queue in Redis but results and events in
// a memory store, which checks that the orchestrator forwards every effect it reports.
//
// The server comes from OMNIQ_TEST_REDIS_URL (tests/run.ts starts one and sets it).

import { runConformance, type StoreConfig, type StoreFixture } from "./conformance/mod.ts";
import { dropPrefix, freshPrefix, prefixUrl, redisUrl } from "./fixtures/redis.ts";

function redisStore(split: boolean): () => Promise<StoreFixture> {
  return () => {
    const prefix = freshPrefix();
    const url = prefixUrl(prefix);
    const side = `memory:conformance-${crypto.randomUUID()}`;
    const stores: StoreConfig = split
      ? { queue: url, results: side, events: side }
      : { backend: url };
    return Promise.resolve({
      stores,
      [Symbol.asyncDispose]: async () => {
        await dropPrefix(prefix);
      },
    });
  };
}

redisUrl(); // no server: fail now, with the reason, instead of in every case
runConformance({ name: "redis", store: redisStore(false) });
runConformance({ name: "redis+memory results/events", store: redisStore(true) });
