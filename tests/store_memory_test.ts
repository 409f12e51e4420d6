// The store-level suite on the `memory:` engine: a fresh named store per case, so that a
// second handle (`connect`) shares it the way a second process shares a database.

import { openMemory } from "../backends/memory/mod.ts";
import { runStoreConformance } from "./store/mod.ts";

runStoreConformance({
  name: "memory store",
  open: async () => {
    const name = `store-${crypto.randomUUID()}`;
    const backend = await openMemory(name);
    return {
      backend,
      connect: () => openMemory(name),
      [Symbol.asyncDispose]: () => backend.close(),
    };
  },
  skip: {
    "a reopened store keeps schedules, paused ones paused":
      "a named memory store lives only while one of its handles is open (MemoryBackend.close " +
      "drops it with its last user): there is nothing to reopen",
  },
});
