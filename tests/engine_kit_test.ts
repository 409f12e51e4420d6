// The engine author's kit from the outside: an engine registered through
// `@omniq/omniq/engine` (here a thin one over memory, under its own scheme) is held to both
// suites by the kit's own entry points, with Deno.test given as the registrar the way an
// outside test file would.
import { registerEngine, runConformance, runStoreConformance } from "../engine.ts";
import { openMemory } from "../backends/memory/mod.ts";

registerEngine({
  name: "kit-outside",
  schemes: ["kit-outside"],
  openUrl: (_url, rest) => Promise.resolve(openMemory(`kit-outside-${rest}`)),
});

runConformance({
  name: "kit-outside",
  test: Deno.test,
  store: () =>
    Promise.resolve({
      stores: { backend: `kit-outside:${crypto.randomUUID()}` },
      [Symbol.asyncDispose]: () => Promise.resolve(),
    }),
});

runStoreConformance({
  name: "kit-outside store",
  test: Deno.test,
  open: async () => {
    const name = crypto.randomUUID();
    const backend = await openMemory(`kit-outside-${name}`);
    return {
      backend,
      connect: () => openMemory(`kit-outside-${name}`),
      [Symbol.asyncDispose]: () => backend.close(),
    };
  },
  skip: {
    "a reopened store keeps schedules, paused ones paused":
      "a named memory store lives only while one of its handles is open: nothing to reopen",
  },
});
