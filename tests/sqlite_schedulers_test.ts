// Three OS processes fire the stored schedules of one SQLite file at once: each tick fires
// exactly once, none is missed (see tests/fixtures/schedulers.ts).
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";

Deno.test(
  "sqlite: three scheduler processes on one file fire each tick exactly once",
  () => threeSchedulersExactlyOnce((dir) => `sqlite:${dir}/queue.db`),
);
