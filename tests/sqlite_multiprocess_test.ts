// Two OS processes work one SQLite file: 2,000 tasks, each completed exactly once.
import {
  twoProcessesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";

Deno.test(
  "sqlite: two processes on one file complete each of 2,000 tasks exactly once",
  () => twoProcessesExactlyOnce((dir) => `sqlite:${dir}/queue.db`),
);

Deno.test(
  "sqlite: two processes never run two tasks of a group at groupConcurrency 1",
  () => twoProcessesOneGroup((dir) => `sqlite:${dir}/queue.db`),
);

Deno.test(
  "sqlite: two processes hold a rate limit of 30 starts per 500 ms",
  () => twoProcessesRateLimited((dir) => `sqlite:${dir}/queue.db`),
);
