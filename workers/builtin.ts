/**
 * The worker types OmniQ ships, registered with the core: `"async"` (handlers on this
 * event loop), `"thread"` (a pool of Web Workers) and `"process"` (a pool of
 * subprocesses). `mod.ts` imports this module.
 *
 * @module
 */

import { registerWorkerType } from "../src/registry.ts";
import { InlineExecutor } from "./executor.ts";
import { type ChildPermissions, ProcessPool } from "./process.ts";
import { ThreadPool } from "./thread.ts";

registerWorkerType({
  type: "async",
  needsModules: false,
  create: () => new InlineExecutor(),
});
registerWorkerType({
  type: "thread",
  needsModules: true,
  create: (spec) =>
    new ThreadPool({ size: spec.size, modules: [...spec.modules], watchdog: spec.lease }),
});
registerWorkerType({
  type: "process",
  needsModules: true,
  create: (spec) =>
    new ProcessPool({
      size: spec.size,
      modules: [...spec.modules],
      permissions: spec.permissions as ChildPermissions | undefined,
    }),
});
