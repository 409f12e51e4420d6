// The conformance suite on the `memory:` engine: a fresh store per case. It is named
// (with a random name) only so that the handles a case opens share it, the way processes
// share a database file; `memory:` alone would give each handle a private store.

import { runConformance } from "./conformance/mod.ts";

runConformance({
  name: "memory",
  store: () =>
    Promise.resolve({
      stores: { backend: `memory:conformance-${crypto.randomUUID()}` },
      [Symbol.asyncDispose]: () => Promise.resolve(),
    }),
});
