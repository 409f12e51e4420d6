/**
 * PostgreSQL peers of OmniQ doing the same no-op work as `bench/throughput.ts`:
 * - enqueue, one job at a time and in batches of 500;
 * - processing no-op jobs with one worker at concurrency 10, timed from the worker's start until
 *   the database shows every job done;
 * - enqueue→start latency (p50/p99) of single jobs sent to an idle, already-running worker.
 *
 * Peers: [pg-boss](https://github.com/timgit/pg-boss) 12.38.0 and
 * [graphile-worker](https://github.com/graphile/worker) 0.18.0, both through Deno's npm support.
 * Each runs in a fresh schema of its own in the database given, dropped at the end.
 *
 * Configuration, chosen for each peer's best fair showing at this workload:
 * - pg-boss: one `work()` worker (`localConcurrency: 1`) fetching `batchSize: 10` jobs at a time
 *   and running their 10 no-op handlers concurrently, with `burstWhenBatchFull` so it fetches
 *   again at once while batches come back full (otherwise every fetch is followed by the polling
 *   interval), the smallest polling interval allowed (0.5 s), and LISTEN/NOTIFY on
 *   (`useListenNotify` on the instance, `notify: true` on each queue created with
 *   `createQueue`). Bulk enqueue with `insert()`. Its processing rate falls with the backlog
 *   (each fetch costs more the more jobs are queued), so it reads lower at 20,000 tasks than at
 *   2,000. The single-enqueue queue is deleted before the next phase, as OmniQ's benchmark
 *   starts that phase on a fresh store (graphile-worker's single-enqueue jobs are deleted too).
 * - graphile-worker: `run({ concurrency: 10, pollInterval: 100, noHandleSignals: true })` with
 *   its defaults otherwise (LISTEN/NOTIFY is built in; no experimental `localQueue` or batched
 *   completion). Single adds with `addJob` from `makeWorkerUtils`, bulk with `addJobs`.
 *   A second row runs it in its batched mode, the documented way to raise its throughput:
 *   `preset.worker.localQueue.size: 10` (the pool locks up to 10 jobs in one query, as OmniQ's
 *   worker claims up to its free slots in one call) and `completeJobBatchDelay: 0` (completions
 *   made in the same tick go to the database in one query).
 *
 * Run through `bench/peers_postgres_main.ts`.
 *
 * @module
 */
import { PgBoss } from "pg-boss";
import {
  Logger,
  makeWorkerUtils,
  run,
  type Runner,
  type RunnerOptions,
  type TaskList,
  type WorkerUtils,
} from "graphile-worker";
import postgres from "postgres";

/** One peer's figures: throughputs in tasks/s, latencies in ms (the shape of `throughput.ts`'s rows). */
export interface PeerRow {
  /** The peer and its version. */
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

/** What {@linkcode measurePeers} runs. */
export interface PeerOptions {
  /** Jobs enqueued and processed in each throughput phase. */
  tasks: number;
  /** Single jobs timed for the latency percentiles. */
  samples: number;
}

const BATCH = 500;
const CONCURRENCY = 10;
const DONE_TIMEOUT_MS = 120_000;

/**
 * Measure pg-boss and graphile-worker on the PostgreSQL database at `url`, one after the other.
 * Each uses a fresh schema, dropped at the end; every worker and pool is closed before this
 * returns.
 *
 * @param url a PostgreSQL connection URL (`postgres://user:password@host:port/database`)
 * @param options how many jobs per throughput phase and how many latency samples
 * @returns one row per peer
 * @throws if a peer loses jobs (fewer handler calls or completed jobs than enqueued)
 *
 * @example Measure both peers
 * ```ts ignore
 * const rows = await measurePeers("postgres://omniq:omniq@127.0.0.1:5432/omniq", {
 *   tasks: 2000,
 *   samples: 100,
 * });
 * ```
 */
export async function measurePeers(url: string, options: PeerOptions): Promise<PeerRow[]> {
  return [
    await measurePgBoss(url, options),
    await measureGraphileWorker(url, options, "graphile-worker 0.18.0"),
    await measureGraphileWorker(
      url,
      options,
      "graphile-worker 0.18.0 (localQueue 10, completeJobBatchDelay 0)",
      { worker: { localQueue: { size: CONCURRENCY }, completeJobBatchDelay: 0 } },
    ),
  ];
}

function newRow(engine: string): PeerRow {
  return { engine, enqueueOne: 0, enqueueMany: 0, process: 0, p50: 0, p99: 0 };
}

function rate(n: number, since: number): number {
  return n / ((performance.now() - since) / 1000);
}

function percentiles(row: PeerRow, samples: number[]): void {
  samples.sort((a, b) => a - b);
  row.p50 = samples[Math.floor(samples.length * 0.5)];
  row.p99 = samples[Math.floor(samples.length * 0.99)];
}

function uniqueSchema(prefix: string): string {
  return `${prefix}_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
}

/** Resolves once `count()` returns `n`, asking every millisecond or so. */
async function waitForCount(
  what: string,
  n: number,
  count: () => Promise<number>,
): Promise<void> {
  const deadline = performance.now() + DONE_TIMEOUT_MS;
  for (;;) {
    const c = await count();
    if (c === n) return;
    if (performance.now() > deadline) {
      throw new Error(`${what}: lost jobs: ${c} of ${n} after ${DONE_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Counts handler calls; `reached(n)` resolves once there were `n`. */
export class Counter {
  /** Calls so far. */
  calls = 0;
  #target = Infinity;
  #resolve?: () => void;
  /** Resolves once there were `n` calls. */
  reached(n: number): Promise<void> {
    this.#target = n;
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      if (this.calls >= n) resolve();
    });
  }
  /** Count one call. */
  hit(): void {
    if (++this.calls >= this.#target) this.#resolve?.();
  }
}

async function measurePgBoss(url: string, { tasks, samples }: PeerOptions): Promise<PeerRow> {
  const row = newRow("pg-boss 12.38.0");
  const schema = uniqueSchema("bench_pgboss");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const errors: unknown[] = [];
  const boss = new PgBoss({
    connectionString: url,
    schema,
    useListenNotify: true,
    schedule: false,
  });
  boss.on("error", (e) => errors.push(e));
  let started = false;
  try {
    await boss.start();
    started = true;
    const queueOptions = { notify: true };
    await boss.createQueue("bench-one", queueOptions);
    await boss.createQueue("bench-noop", queueOptions);
    await boss.createQueue("bench-probe", queueOptions);
    const workOptions = {
      localConcurrency: 1,
      batchSize: CONCURRENCY,
      burstWhenBatchFull: true,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: 0.5,
    };

    let t = performance.now();
    for (let i = 0; i < tasks; i++) await boss.send("bench-one", { i });
    row.enqueueOne = rate(tasks, t);
    // Out of the way of the next phases, as OmniQ's benchmark starts them on a fresh store.
    await boss.deleteQueue("bench-one");

    t = performance.now();
    for (let i = 0; i < tasks; i += BATCH) {
      await boss.insert(
        "bench-noop",
        Array.from({ length: Math.min(BATCH, tasks - i) }, (_, j) => ({ data: { i: i + j } })),
      );
    }
    row.enqueueMany = rate(tasks, t);

    const handled = new Counter();
    const allHandled = handled.reached(tasks);
    const noop = (_job: unknown) => {
      handled.hit();
      return Promise.resolve();
    };
    const completed = async () =>
      Number(
        (await sql`select count(*)::int as n from ${sql(schema)}.job
          where name = 'bench-noop' and state = 'completed'`)[0].n,
      );
    t = performance.now();
    await boss.work("bench-noop", workOptions, async (jobs) => {
      await Promise.all(jobs.map(noop));
    });
    await Promise.race([allHandled, timeout("pg-boss: handlers", handled, tasks)]);
    await waitForCount("pg-boss: completed jobs", tasks, completed);
    row.process = rate(tasks, t);
    if (handled.calls !== tasks) {
      throw new Error(`pg-boss: ${handled.calls} handler calls for ${tasks} jobs`);
    }

    let onStart: ((at: number) => void) | undefined;
    await boss.work("bench-probe", workOptions, (jobs) => {
      const at = performance.now();
      for (const _ of jobs) onStart?.(at);
      return Promise.resolve();
    });
    // Let the new worker make its first (empty) fetch and go idle.
    await new Promise((r) => setTimeout(r, 200));
    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = new Promise<number>((resolve) => (onStart = resolve));
      const t0 = performance.now();
      await boss.send("bench-probe", { i });
      latencies.push((await start) - t0);
    }
    percentiles(row, latencies);
    if (errors.length) throw new Error(`pg-boss reported errors: ${String(errors[0])}`);
  } finally {
    if (started) await boss.stop({ graceful: true, close: true, timeout: 10_000 });
    await sql`drop schema if exists ${sql(schema)} cascade`;
    await sql.end();
  }
  return row;
}

/**
 * The options graphile-worker runs with in the benches (this one and `server_cost.ts`):
 * concurrency 10, polling every 100 ms besides LISTEN, no log, and the given preset.
 *
 * @param url The server.
 * @param schema graphile-worker's schema.
 * @param taskList The handlers.
 * @param preset Its batched mode, or none for the defaults.
 * @returns Options for `run`.
 */
export function graphileRunner(
  url: string,
  schema: string,
  taskList: TaskList,
  preset?: GraphileConfig.Preset,
): RunnerOptions {
  return {
    connectionString: url,
    schema,
    logger: new Logger(() => () => {}),
    concurrency: CONCURRENCY,
    pollInterval: 100,
    noHandleSignals: true,
    preset,
    taskList,
  };
}

async function measureGraphileWorker(
  url: string,
  { tasks, samples }: PeerOptions,
  engine: string,
  preset?: GraphileConfig.Preset,
): Promise<PeerRow> {
  const row = newRow(engine);
  const schema = uniqueSchema("bench_graphile");
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  const logger = new Logger(() => () => {});
  let utils: WorkerUtils | undefined;
  let runner: Runner | undefined;
  try {
    utils = await makeWorkerUtils({ connectionString: url, schema, logger });
    await utils.migrate();
    const remaining = async () =>
      Number((await sql`select count(*)::int as n from ${sql(schema)}._private_jobs`)[0].n);

    let t = performance.now();
    for (let i = 0; i < tasks; i++) await utils.addJob("bench_one", { i });
    row.enqueueOne = rate(tasks, t);
    await sql`delete from ${sql(schema)}._private_jobs`;

    t = performance.now();
    for (let i = 0; i < tasks; i += BATCH) {
      await utils.addJobs(
        Array.from(
          { length: Math.min(BATCH, tasks - i) },
          (_, j) => ({ identifier: "bench_noop", payload: { i: i + j } }),
        ),
      );
    }
    row.enqueueMany = rate(tasks, t);

    const handled = new Counter();
    const allHandled = handled.reached(tasks);
    let onStart: ((at: number) => void) | undefined;
    t = performance.now();
    runner = await run(graphileRunner(url, schema, {
      bench_noop: () => {
        handled.hit();
      },
      bench_probe: () => {
        onStart?.(performance.now());
      },
    }, preset));
    await Promise.race([allHandled, timeout("graphile-worker: handlers", handled, tasks)]);
    await waitForCount("graphile-worker: jobs left", 0, remaining);
    row.process = rate(tasks, t);
    if (handled.calls !== tasks) {
      throw new Error(`graphile-worker: ${handled.calls} handler calls for ${tasks} jobs`);
    }

    const latencies: number[] = [];
    for (let i = 0; i < samples; i++) {
      const start = new Promise<number>((resolve) => (onStart = resolve));
      const t0 = performance.now();
      await utils.addJob("bench_probe", { i });
      latencies.push((await start) - t0);
    }
    percentiles(row, latencies);
  } finally {
    await runner?.stop();
    await utils?.release();
    await sql`drop schema if exists ${sql(schema)} cascade`;
    await sql.end();
  }
  return row;
}

/** Rejects after {@linkcode DONE_TIMEOUT_MS}, naming how many handler calls were counted. */
function timeout(what: string, counter: Counter, n: number): Promise<never> {
  return new Promise<never>((_, reject) => {
    const id = setTimeout(
      () => reject(new Error(`${what}: lost jobs: ${counter.calls} of ${n} handled`)),
      DONE_TIMEOUT_MS,
    );
    Deno.unrefTimer(id);
  });
}
