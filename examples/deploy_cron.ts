/**
 * Driving stored schedules from Deno Deploy.
 *
 * Deploy runs only the `Deno.cron` jobs registered at the top level of the main module (not
 * after an `await`), with 5 fields, in UTC. So one static per-minute cron calls `q.tick()`,
 * which fires every stored schedule that is due, exactly once across all isolates.
 *
 * Sub-minute schedules (`every: "10s"`, a seconds field) cannot run on time there: a
 * per-minute driver sees them once a minute. Use a long-lived worker for those.
 *
 * Locally: `deno run --unstable-cron --allow-read=. --allow-write=. examples/deploy_cron.ts`
 *
 * @module
 */
import { OmniQ } from "@omniq/omniq";
import "./tasks.ts";

// Open without awaiting, so the cron below is registered at the top level.
const ready = OmniQ.open(Deno.args[0] ?? "sqlite:./omniq.db");

Deno.cron("omniq-schedules", "* * * * *", async () => {
  const q = await ready;
  const fired = await q.tick();
  console.log(`omniq: ${fired} schedule tick(s) fired`);
});
