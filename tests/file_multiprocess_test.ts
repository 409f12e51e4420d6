// Two OS processes work one `file:` directory: 2,000 tasks, each completed exactly once.
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import {
  twoProcessesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";
import { killedWorkerLosesNothing } from "./fixtures/crash.ts";

Deno.test(
  "file: two processes on one directory complete each of 2,000 tasks exactly once",
  () => twoProcessesExactlyOnce((dir) => `file:${dir}/store`),
);

Deno.test(
  "file: three scheduler processes on one directory fire each tick exactly once",
  () => threeSchedulersExactlyOnce((dir) => `file:${dir}/store`),
);

Deno.test(
  "file: a process killed mid-run (maybe holding the lock) loses no task",
  () => killedWorkerLosesNothing((dir) => `file:${dir}/store`, { tasks: 300, timeout: 30_000 }),
);

Deno.test(
  "file: two processes never run two tasks of a group at groupConcurrency 1",
  () => twoProcessesOneGroup((dir) => `file:${dir}/store`),
);

Deno.test(
  "file: two processes hold a rate limit of 30 starts per 500 ms",
  () => twoProcessesRateLimited((dir) => `file:${dir}/store`),
);
