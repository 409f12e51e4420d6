// Processes sharing one Deno KV file: 2,000 tasks each completed exactly once, and three
// schedulers that fire each tick exactly once.
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import {
  twoProcessesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";

Deno.test(
  "kv: two processes on one KV file complete each of 2,000 tasks exactly once",
  () => twoProcessesExactlyOnce((dir) => `kv:${dir}/omniq.kv`),
);

Deno.test(
  "kv: three scheduler processes on one KV file fire each tick exactly once",
  () => threeSchedulersExactlyOnce((dir) => `kv:${dir}/omniq.kv`),
);

Deno.test(
  "kv: two processes never run two tasks of a group at groupConcurrency 1",
  () => twoProcessesOneGroup((dir) => `kv:${dir}/omniq.kv`),
);

Deno.test(
  "kv: two processes hold a rate limit of 30 starts per 500 ms",
  () => twoProcessesRateLimited((dir) => `kv:${dir}/omniq.kv`),
);
