// Several OS processes on one PostgreSQL schema: four worker processes race for 10,000
// tasks, each completed exactly once; and three scheduler processes fire each tick of the
// stored schedules exactly once (tests/fixtures/schedulers.ts, shared with the other engines).

import { dropSchema, freshSchema, schemaUrl } from "./fixtures/postgres.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import {
  processesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";

/** What a child needs to reach the server (postgres.js reads two variables at start). */
const NET = ["--allow-net=127.0.0.1", "--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS"];
const PROCESSES = 4;
const TASKS = 10_000;

Deno.test(`postgres: ${PROCESSES} processes complete each of ${TASKS} tasks exactly once`, async () => {
  const schema = freshSchema("omniq_mp");
  try {
    await processesExactlyOnce(() => schemaUrl(schema), {
      processes: PROCESSES,
      tasks: TASKS,
      extra: NET,
    });
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: three scheduler processes on one schema fire each tick exactly once", async () => {
  const schema = freshSchema("omniq_sched");
  try {
    await threeSchedulersExactlyOnce(() => schemaUrl(schema), NET);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: two processes never run two tasks of a group at groupConcurrency 1", async () => {
  const schema = freshSchema("omniq_group");
  try {
    await twoProcessesOneGroup(() => schemaUrl(schema), NET);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: two processes hold a rate limit of 30 starts per 500 ms", async () => {
  const schema = freshSchema("omniq_rate");
  try {
    await twoProcessesRateLimited(() => schemaUrl(schema), NET);
  } finally {
    await dropSchema(schema);
  }
});
