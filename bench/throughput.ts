/**
 * Throughput and latency of the embedded engines, side by side in one run:
 * - enqueue, one task at a time and with `enqueueMany` (batches of 500);
 * - processing no-op tasks with one async worker at concurrency 10;
 * - enqueue→start latency (p50/p99) of single tasks sent to an idle worker.
 *
 * Engines: `memory:`, `sqlite:`, `file:` and `kv:` (Deno KV), and, as a reference on the same
 * KV file type, Deno KV's own queue (`kv.enqueue` / `kv.listenQueue`) doing the same no-op
 * work with none of OmniQ's bookkeeping (no records, results, events, retries or leases);
 * `postgres:` with pg-boss and graphile-worker on the same server (`bench/peers_postgres.ts`),
 * and `redis:` with BullMQ under Node on the same server (`bench/peers_redis.ts`). The servers
 * are throwaway ones on loopback, unless `OMNIQ_BENCH_POSTGRES_URL` / `OMNIQ_BENCH_REDIS_URL`
 * name others; `nats:` with raw JetStream publish/consume on the same server as its reference
 * (`bench/peers_nats.ts`, `OMNIQ_BENCH_NATS_URL`). Ratios of OmniQ against each peer follow
 * the table.
 *
 * Run with `deno task bench` (`-- --tasks 5000` for a quicker run, `--engines memory,kv` to
 * pick engines). `bench/node.ts` imports {@linkcode measure} and the URL helpers to take the
 * same figures beside the npm build's under Node.
 *
 * @module
 */
import { defineTask, OmniQ } from "../mod.ts";
import { measurePeers } from "./peers_postgres.ts";
import { measureBullmq } from "./peers_redis.ts";
import { measureJetStream } from "./peers_nats.ts";
import { startNats, startPostgres, startRedis, type TestServer } from "../tests/servers.ts";

/** The value after `name` on the command line, if given. */
export function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i === -1 ? undefined : Deno.args[i + 1];
}

const noop = defineTask("bench-noop", (_i: number) => undefined);
let onStart: ((at: number) => void) | undefined;
const probe = defineTask("bench-probe", () => {
  onStart?.(performance.now());
});

/** One engine's figures. */
export interface Row {
  /** The engine (or peer) measured. */
  engine: string;
  /** Enqueue one task per call, tasks/s. */
  enqueueOne: number;
  /** Enqueue in batches of 500, tasks/s. */
  enqueueMany: number;
  /** Process no-op tasks, one async worker at concurrency 10, tasks/s. */
  process: number;
  /** Enqueue→start latency of a single task sent to an idle worker, median, ms. */
  p50: number;
  /** Enqueue→start latency, 99th percentile, ms. */
  p99: number;
}

/** How much work each phase does. */
export interface Workload {
  /** Tasks per throughput phase. */
  tasks: number;
  /** Latency samples. */
  samples: number;
}

/** A fresh store's URL and how to remove it, made anew for each phase. */
export type StoreFactory = () => Promise<[string, () => Promise<void>]>;

/**
 * Measure one engine: each phase on a fresh store from `url`.
 *
 * @param engine The row's label.
 * @param url Makes a fresh store per phase.
 * @param workload Tasks per throughput phase and latency samples.
 * @returns The engine's row.
 * @throws When the engine loses tasks.
 */
export async function measure(engine: string, url: StoreFactory, workload: Workload): Promise<Row> {
  const { tasks: TASKS, samples: LATENCY_SAMPLES } = workload;
  const row: Row = { engine, enqueueOne: 0, enqueueMany: 0, process: 0, p50: 0, p99: 0 };
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    const t = performance.now();
    for (let i = 0; i < TASKS; i++) await q.enqueue(noop, [i]);
    row.enqueueOne = TASKS / ((performance.now() - t) / 1000);
    await q.close();
    await dispose();
  }
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    let t = performance.now();
    for (let i = 0; i < TASKS; i += 500) {
      await q.enqueueMany(
        Array.from({ length: Math.min(500, TASKS - i) }, (_, j) => ({ task: noop, args: [i + j] })),
      );
    }
    row.enqueueMany = TASKS / ((performance.now() - t) / 1000);
    t = performance.now();
    await q.run({ until: "idle", concurrency: 10 });
    row.process = TASKS / ((performance.now() - t) / 1000);
    const stats = await q.stats();
    if (stats.total.completed !== TASKS) {
      throw new Error(`${engine}: lost tasks: ${JSON.stringify(stats.total)}`);
    }
    await q.close();
    await dispose();
  }
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    const w = q.worker({ concurrency: 10, pollInterval: "1s" });
    await w.start();
    const samples: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const started = new Promise<number>((resolve) => (onStart = resolve));
      const t0 = performance.now();
      await q.enqueue(probe, []);
      samples.push((await started) - t0);
    }
    samples.sort((a, b) => a - b);
    row.p50 = samples[Math.floor(samples.length * 0.5)];
    row.p99 = samples[Math.floor(samples.length * 0.99)];
    await w.stop();
    await q.close();
    await dispose();
  }
  return row;
}

/**
 * Stores in fresh temp directories, removed after each phase.
 *
 * @param make The store's URL for a directory, e.g. ``(dir) => `sqlite:${dir}/bench.db` ``.
 * @returns The factory.
 */
export function temp(make: (dir: string) => string): StoreFactory {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq-bench-" });
    return [make(dir), () => Deno.remove(dir, { recursive: true })];
  };
}

/** Deno KV's own queue doing the same work: the reference for the `kv:` engine. */
async function measureKvQueue(workload: Workload): Promise<Row> {
  const { tasks: TASKS, samples: LATENCY_SAMPLES } = workload;
  const row: Row = {
    engine: "Deno KV kv.enqueue/listenQueue (reference)",
    enqueueOne: 0,
    enqueueMany: 0,
    process: 0,
    p50: 0,
    p99: 0,
  };
  const dir = await Deno.makeTempDir({ prefix: "omniq-bench-kvq-" });
  try {
    {
      const kv = await Deno.openKv(`${dir}/one.kv`);
      const t = performance.now();
      for (let i = 0; i < TASKS; i++) await kv.enqueue({ i }, { delay: 60_000 });
      row.enqueueOne = TASKS / ((performance.now() - t) / 1000);
      kv.close();
    }
    {
      let kv = await Deno.openKv(`${dir}/many.kv`);
      let t = performance.now();
      for (let i = 0; i < TASKS; i += 500) {
        const op = kv.atomic();
        for (let j = i; j < Math.min(TASKS, i + 500); j++) op.enqueue({ i: j });
        await op.commit();
      }
      row.enqueueMany = TASKS / ((performance.now() - t) / 1000);
      kv.close();
      // Delivered when a listener starts: time from then until the last one is handled.
      kv = await Deno.openKv(`${dir}/many.kv`);
      let seen = 0;
      let done!: () => void;
      const all = new Promise<void>((r) => done = r);
      t = performance.now();
      const listening = kv.listenQueue(() => {
        if (++seen === TASKS) done();
      });
      await all;
      row.process = TASKS / ((performance.now() - t) / 1000);
      kv.close();
      await listening;
    }
    {
      const kv = await Deno.openKv(`${dir}/latency.kv`);
      let resolve: ((at: number) => void) | undefined;
      const listening = kv.listenQueue(() => resolve?.(performance.now()));
      const samples: number[] = [];
      for (let i = 0; i < LATENCY_SAMPLES; i++) {
        const started = new Promise<number>((r) => (resolve = r));
        const t0 = performance.now();
        await kv.enqueue({ i });
        samples.push((await started) - t0);
      }
      samples.sort((a, b) => a - b);
      row.p50 = samples[Math.floor(samples.length * 0.5)];
      row.p99 = samples[Math.floor(samples.length * 0.99)];
      kv.close();
      await listening;
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return row;
}

// PostgreSQL: $OMNIQ_BENCH_POSTGRES_URL, else a throwaway server on loopback (fsync off, the
// same for OmniQ and its peers).
let pgServer: TestServer | undefined;
async function postgresUrl(): Promise<string> {
  const given = Deno.env.get("OMNIQ_BENCH_POSTGRES_URL");
  if (given) return given;
  pgServer ??= await startPostgres();
  return pgServer.url;
}

/**
 * Stores on the PostgreSQL server at `base`, each in a fresh schema.
 *
 * @param base The server's URL.
 * @returns The factory.
 */
export function postgresSchema(base: string): StoreFactory {
  return () => {
    const url = new URL(base);
    url.searchParams.set("schema", `omniq_bench_${crypto.randomUUID().slice(0, 8)}`);
    return Promise.resolve([url.href, () => Promise.resolve()]);
  };
}

// Redis: a throwaway server on loopback (appendonly), shared by OmniQ and BullMQ, with a fresh
// key prefix (OmniQ) or queue name (BullMQ) per measurement.
let redisServer: TestServer | undefined;
async function redisUrl(): Promise<string> {
  const given = Deno.env.get("OMNIQ_BENCH_REDIS_URL");
  if (given) return given;
  redisServer ??= await startRedis();
  return redisServer.url;
}

// NATS: a throwaway server on loopback with JetStream on file storage, a fresh name prefix per
// measurement (its own buckets and stream), and raw JetStream on the same server.
let natsServer: TestServer | undefined;
async function natsUrl(): Promise<string> {
  const given = Deno.env.get("OMNIQ_BENCH_NATS_URL");
  if (given) return given;
  natsServer ??= await startNats();
  return natsServer.url;
}

/**
 * Stores on the server at `base` (Redis, NATS), each under a fresh name prefix.
 *
 * @param base The server's URL.
 * @param prefix The prefix for a random id.
 * @returns The factory.
 */
export function prefixed(base: string, prefix: (id: string) => string): StoreFactory {
  return () => {
    const url = new URL(base);
    url.searchParams.set("prefix", prefix(crypto.randomUUID().slice(0, 8)));
    return Promise.resolve([url.href, () => Promise.resolve()] as [string, () => Promise<void>]);
  };
}

if (import.meta.main) await main();

async function main(): Promise<void> {
  const TASKS = Number(flag("--tasks") ?? 20_000);
  const LATENCY_SAMPLES = Number(flag("--samples") ?? 500);
  const ENGINES = (
    flag("--engines") ??
      "memory,sqlite,file,kv,kv-queue,postgres,pg-peers,redis,bullmq,nats,nats-raw"
  ).split(",");
  const W: Workload = { tasks: TASKS, samples: LATENCY_SAMPLES };
  const rows: Row[] = [];
  for (const engine of ENGINES) {
    switch (engine) {
      case "memory":
        rows.push(
          await measure("memory:", () => Promise.resolve(["memory:", () => Promise.resolve()]), W),
        );
        break;
      case "sqlite":
        rows.push(await measure("sqlite: (file, WAL)", temp((dir) => `sqlite:${dir}/bench.db`), W));
        break;
      case "file":
        rows.push(await measure("file: (directory)", temp((dir) => `file:${dir}/store`), W));
        break;
      case "kv":
        rows.push(await measure("kv: (Deno KV file)", temp((dir) => `kv:${dir}/bench.kv`), W));
        break;
      case "kv-queue":
        rows.push(await measureKvQueue(W));
        break;
      case "postgres":
        rows.push(await measure("postgres: (OmniQ)", postgresSchema(await postgresUrl()), W));
        break;
      case "redis":
        rows.push(
          await measure("redis: (OmniQ)", prefixed(await redisUrl(), (id) => `b${id}:`), W),
        );
        break;
      case "bullmq":
        rows.push(
          await measureBullmq(await redisUrl(), { tasks: TASKS, samples: LATENCY_SAMPLES }),
        );
        break;
      case "nats":
        rows.push(await measure("nats: (OmniQ)", prefixed(await natsUrl(), (id) => `b${id}`), W));
        break;
      case "nats-raw":
        rows.push(
          await measureJetStream(await natsUrl(), { tasks: TASKS, samples: LATENCY_SAMPLES }),
        );
        break;
      case "pg-peers":
        rows.push(
          ...await measurePeers(await postgresUrl(), { tasks: TASKS, samples: LATENCY_SAMPLES }),
        );
        break;
      default:
        throw new Error(`--engines: unknown engine "${engine}"`);
    }
  }

  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  console.log(
    `\nOmniQ ${TASKS.toLocaleString("en-US")} no-op tasks; latency over ${LATENCY_SAMPLES} samples`,
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

  // OmniQ against each peer on the same server: above 1 means OmniQ is faster (for latency,
  // lower is better, so the ratio is the peer's over OmniQ's).
  function ratios(ours: Row | undefined, peers: Row[]): void {
    if (!ours || peers.length === 0) return;
    const x = (n: number) => `${n.toFixed(2)}×`;
    console.log(`\n| ${ours.engine} vs | enqueue one | enqueueMany | process | p50 | p99 |`);
    console.log("|---|---:|---:|---:|---:|---:|");
    for (const p of peers) {
      console.log(
        `| ${p.engine} | ${x(ours.enqueueOne / p.enqueueOne)} | ${
          x(ours.enqueueMany / p.enqueueMany)
        } | ${x(ours.process / p.process)} | ${x(p.p50 / ours.p50)} | ${x(p.p99 / ours.p99)} |`,
      );
    }
  }
  ratios(
    rows.find((r) => r.engine.startsWith("postgres:")),
    rows.filter((r) => /pg-boss|graphile/.test(r.engine)),
  );
  ratios(
    rows.find((r) => r.engine.startsWith("redis:")),
    rows.filter((r) => /BullMQ/.test(r.engine)),
  );
  ratios(
    rows.find((r) => r.engine.startsWith("nats:")),
    rows.filter((r) => /raw JetStream/.test(r.engine)),
  );
  const kvRow = rows.find((r) => r.engine.startsWith("kv:"));
  const kvRef = rows.find((r) => r.engine.startsWith("Deno KV"));
  if (kvRow && kvRef) {
    console.log(
      `\nkv: engine / Deno KV's own queue: enqueue one ${
        (kvRow.enqueueOne / kvRef.enqueueOne).toFixed(2)
      }×, enqueueMany ${(kvRow.enqueueMany / kvRef.enqueueMany).toFixed(2)}×, process ${
        (kvRow.process / kvRef.process).toFixed(2)
      }×`,
    );
  }
  await pgServer?.stop();
  await redisServer?.stop();
  await natsServer?.stop();
}
