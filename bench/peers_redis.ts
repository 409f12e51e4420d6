/**
 * The Redis peer of OmniQ, doing the same no-op work as `bench/throughput.ts`:
 * [BullMQ](https://github.com/taskforcesh/bullmq) 6.7.0 with ioredis 5.11.1, under Node (its
 * home runtime), on the same Redis server in the same run.
 *
 * - enqueue one job at a time (`queue.add`) and in batches of 500 (`addBulk`);
 * - processing no-op jobs with one `Worker` at concurrency 10, timed from `worker.run()` until
 *   it has completed every job (then checked against `getJobCounts`);
 * - enqueue→start latency (p50/p99) of single jobs sent to an idle, running Worker.
 *
 * BullMQ keeps its defaults (completed jobs are kept, as OmniQ keeps results and events);
 * each phase uses a fresh queue, obliterated at the end. The packages are installed with
 * `npm` into a cache directory (`$XDG_CACHE_HOME/omniq-bench/` or `~/.cache/omniq-bench/`)
 * the first time, so the bench needs `node` and `npm` on the `PATH`.
 *
 * @module
 */

/** BullMQ's figures, in the shape of `throughput.ts`'s rows. */
export interface BullmqRow {
  /** The peer, its version and runtime. */
  engine: string;
  /** Enqueue one job per call, jobs/s. */
  enqueueOne: number;
  /** Enqueue in batches of 500, jobs/s. */
  enqueueMany: number;
  /** Process no-op jobs, one worker at concurrency 10, jobs/s. */
  process: number;
  /** Enqueue→start latency of a single job sent to an idle worker, median, ms. */
  p50: number;
  /** Enqueue→start latency, 99th percentile, ms. */
  p99: number;
}

const PACKAGES = ["bullmq@6.7.0", "ioredis@5.11.1"];

function cacheDir(): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  return `${base}/omniq-bench/${PACKAGES.join("+").replaceAll("@", "-")}`;
}

async function run(cmd: string, args: string[], cwd: string): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`the BullMQ benchmark runs under Node: "${cmd}" is not on the PATH`);
    }
    throw error;
  }
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${text.decode(out.stderr).trim()}`);
  }
  return text.decode(out.stdout);
}

/** The directory holding BullMQ's node_modules and the runner script, installed if missing. */
async function install(): Promise<string> {
  const dir = cacheDir();
  try {
    await Deno.stat(`${dir}/node_modules/bullmq/package.json`);
  } catch {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/package.json`, '{ "private": true, "type": "module" }\n');
    await run("npm", ["install", "--no-audit", "--no-fund", "--silent", ...PACKAGES], dir);
  }
  await Deno.copyFile(new URL("./peers_bullmq.mjs", import.meta.url), `${dir}/peers_bullmq.mjs`);
  return dir;
}

/**
 * Measure BullMQ under Node on the Redis server at `url`.
 *
 * @param url The server, `redis://host:port` (a throwaway one: BullMQ's keys go in db 0).
 * @param options How many jobs per throughput phase and how many latency samples.
 * @returns BullMQ's row.
 * @throws When Node or npm is missing, or BullMQ loses jobs.
 */
export async function measureBullmq(
  url: string,
  options: { tasks: number; samples: number },
): Promise<BullmqRow> {
  const dir = await install();
  const config = JSON.stringify({ url, tasks: options.tasks, samples: options.samples });
  const out = await run("node", [`${dir}/peers_bullmq.mjs`, config], dir);
  return JSON.parse(out.trim().split("\n").at(-1)!) as BullmqRow;
}
