// The store-level suite on the `redis:` engine: a fresh key prefix per case (its keys are
// deleted when the case ends); a second handle opens the same prefix.
//
// The server comes from OMNIQ_TEST_REDIS_URL (tests/run.ts starts one and sets it).

import { openRedis } from "../backends/redis/mod.ts";
import { dropPrefix, freshPrefix, prefixUrl, redisUrl } from "./fixtures/redis.ts";
import { runStoreConformance } from "./store/mod.ts";

redisUrl(); // no server: fail now, with the reason, instead of in every case
runStoreConformance({
  name: "redis store",
  open: async () => {
    const prefix = freshPrefix("omniq-store");
    const url = prefixUrl(prefix);
    const backend = await openRedis(url);
    return {
      backend,
      connect: () => openRedis(url),
      [Symbol.asyncDispose]: async () => {
        await backend.close();
        await dropPrefix(prefix);
      },
    };
  },
});
