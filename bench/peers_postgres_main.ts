/**
 * Print the PostgreSQL peers' figures (pg-boss and graphile-worker, see
 * `bench/peers_postgres.ts`) as a markdown table like `bench/throughput.ts`'s.
 *
 * The database is `--url`, else `$OMNIQ_BENCH_POSTGRES_URL`, else a throwaway PostgreSQL
 * started with `startPostgres()` from `tests/servers.ts` (which runs it with `fsync=off`) and
 * stopped at the end.
 *
 * ```sh
 * deno run -A bench/peers_postgres_main.ts --tasks 20000 --samples 500
 * ```
 *
 * @module
 */
import { measurePeers } from "./peers_postgres.ts";
import { startPostgres, type TestServer } from "../tests/servers.ts";

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i === -1 ? undefined : Deno.args[i + 1];
}

const TASKS = Number(flag("--tasks") ?? 20_000);
const SAMPLES = Number(flag("--samples") ?? 500);

let server: TestServer | undefined;
let url = flag("--url") ?? Deno.env.get("OMNIQ_BENCH_POSTGRES_URL");
if (!url) {
  server = await startPostgres();
  url = server.url;
}
try {
  const rows = await measurePeers(url, { tasks: TASKS, samples: SAMPLES });
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(
    `\nPostgreSQL peers: ${
      TASKS.toLocaleString("en-US")
    } no-op tasks; latency over ${SAMPLES} samples`,
  );
  console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores\n`);
  console.log(
    "| engine | enqueue one (tasks/s) | enqueueMany (tasks/s) | process, concurrency 10 (tasks/s) | enqueue→start p50 | p99 |",
  );
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.engine} | ${fmt(r.enqueueOne)} | ${fmt(r.enqueueMany)} | ${fmt(r.process)} | ${
        r.p50.toFixed(2)
      } ms | ${r.p99.toFixed(2)} ms |`,
    );
  }
} finally {
  await server?.stop();
}
