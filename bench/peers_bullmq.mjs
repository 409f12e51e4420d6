// BullMQ doing the same no-op work as `bench/throughput.ts`, under Node, on the Redis server
// given: enqueue one job at a time and in batches of 500 (`addBulk`), process with one Worker
// at concurrency 10, and enqueue→start latency of single jobs sent to an idle, running Worker.
//
// Run by `bench/peers_redis.ts`, which installs BullMQ and ioredis into a cache directory and
// copies this file there (so `bullmq` resolves from its node_modules):
//   node peers_bullmq.mjs '{"url":"redis://127.0.0.1:6379","tasks":20000,"samples":500}'
// It prints one JSON line: the row of figures.

// The name goes through an expression so that `deno check` does not try to resolve it:
// only Node, from the cache directory's node_modules, loads it.
const { Queue, Worker } = await import(["bullmq"][0]);

const BATCH = 500;
const CONCURRENCY = 10;
const { url, tasks, samples } = JSON.parse(process.argv[2]);
const server = new URL(url);
const connection = {
  host: server.hostname,
  port: Number(server.port || 6379),
  // Workers need this (BullMQ refuses to start without it); the same for every client.
  maxRetriesPerRequest: null,
};
let queues = 0;
/** A fresh queue name for each phase, as OmniQ's benchmark starts each on a fresh store. */
const fresh = () => `bench-${process.pid}-${++queues}`;

/** Resolve once `worker` has completed `n` jobs; reject on a failed job. */
function completions(worker, n) {
  return new Promise((resolve, reject) => {
    let done = 0;
    worker.on("completed", () => {
      if (++done === n) resolve();
    });
    worker.on("failed", (_job, error) => reject(error));
  });
}

const row = { engine: "BullMQ 6.7.0 (Node)", enqueueOne: 0, enqueueMany: 0, process: 0 };

{
  const queue = new Queue(fresh(), { connection });
  await queue.waitUntilReady();
  const t = performance.now();
  for (let i = 0; i < tasks; i++) await queue.add("noop", { i });
  row.enqueueOne = tasks / ((performance.now() - t) / 1000);
  await queue.obliterate({ force: true });
  await queue.close();
}

{
  const name = fresh();
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  let t = performance.now();
  for (let i = 0; i < tasks; i += BATCH) {
    const n = Math.min(BATCH, tasks - i);
    await queue.addBulk(
      Array.from({ length: n }, (_, j) => ({ name: "noop", data: { i: i + j } })),
    );
  }
  row.enqueueMany = tasks / ((performance.now() - t) / 1000);
  const worker = new Worker(name, () => Promise.resolve(), {
    connection,
    concurrency: CONCURRENCY,
    autorun: false,
  });
  const all = completions(worker, tasks);
  t = performance.now();
  worker.run();
  await all;
  row.process = tasks / ((performance.now() - t) / 1000);
  const counts = await queue.getJobCounts("completed", "failed", "waiting", "active");
  if (counts.completed !== tasks) {
    throw new Error(`BullMQ lost jobs: ${JSON.stringify(counts)} of ${tasks}`);
  }
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}

{
  const name = fresh();
  const queue = new Queue(name, { connection });
  let onStart;
  const worker = new Worker(name, () => Promise.resolve(onStart(performance.now())), {
    connection,
    concurrency: CONCURRENCY,
  });
  await worker.waitUntilReady();
  await queue.waitUntilReady();
  // Let the worker reach its blocking wait before the first sample.
  await new Promise((r) => setTimeout(r, 200));
  const times = [];
  for (let i = 0; i < samples; i++) {
    const started = new Promise((resolve) => (onStart = resolve));
    const t0 = performance.now();
    await queue.add("probe", {});
    times.push((await started) - t0);
  }
  times.sort((a, b) => a - b);
  row.p50 = times[Math.floor(times.length * 0.5)];
  row.p99 = times[Math.floor(times.length * 0.99)];
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
}

console.log(JSON.stringify(row));
