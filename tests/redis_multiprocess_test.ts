// Several OS processes on one Redis server: four worker processes race for 10,000 tasks,
// each completed exactly once; and three scheduler processes fire each tick of the stored
// schedules exactly once (tests/fixtures/schedulers.ts, shared with the other engines).
// Each test works under a fresh key prefix, deleted when it ends.

import { dropPrefix, freshPrefix, prefixUrl } from "./fixtures/redis.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import {
  processesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";

/** What a child needs to reach the server. */
const NET = ["--allow-net=127.0.0.1", "--allow-env"];
const PROCESSES = 4;
const TASKS = 10_000;

Deno.test(`redis: ${PROCESSES} processes complete each of ${TASKS} tasks exactly once`, async () => {
  const prefix = freshPrefix("omniq-mp");
  try {
    await processesExactlyOnce(() => prefixUrl(prefix), {
      processes: PROCESSES,
      tasks: TASKS,
      extra: NET,
    });
  } finally {
    await dropPrefix(prefix);
  }
});

Deno.test("redis: three scheduler processes on one prefix fire each tick exactly once", async () => {
  const prefix = freshPrefix("omniq-sched");
  try {
    await threeSchedulersExactlyOnce(() => prefixUrl(prefix), NET);
  } finally {
    await dropPrefix(prefix);
  }
});

Deno.test("redis: two processes never run two tasks of a group at groupConcurrency 1", async () => {
  const prefix = freshPrefix("omniq-group");
  try {
    await twoProcessesOneGroup(() => prefixUrl(prefix), NET);
  } finally {
    await dropPrefix(prefix);
  }
});

Deno.test("redis: two processes hold a rate limit of 30 starts per 500 ms", async () => {
  const prefix = freshPrefix("omniq-rate");
  try {
    await twoProcessesRateLimited(() => prefixUrl(prefix), NET);
  } finally {
    await dropPrefix(prefix);
  }
});
