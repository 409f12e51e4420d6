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
 * pick engines; `--engines memory,memory+groups` adds a row whose processed tasks are spread
 * over `--groups` groups, 1,000 by default, at `groupConcurrency: 1`, and `memory+rate` one
 * whose tasks have a rate limit far above the load). `bench/node.ts` imports {@linkcode measure} and the URL helpers to take the
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
  /**
   * Spread the processed tasks over this many groups at `groupConcurrency: 1` (an engine
   * named `<engine>+groups` on the command line), to show what round-robin groups cost.
   */
  groups?: number;
  /**
   * Give the processed tasks a rate limit far above the load (a billion a second; an engine
   * named `<engine>+rate`), to show what the feature costs when it does not bite.
   */
  rate?: boolean;
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
    const groups = workload.groups;
    for (let i = 0; i < TASKS; i += 500) {
      await q.enqueueMany(
        Array.from({ length: Math.min(500, TASKS - i) }, (_, j) => ({
          task: noop,
          args: [i + j],
          ...(groups ? { group: `g${(i + j) % groups}`, groupConcurrency: 1 } : {}),
          ...(workload.rate ? { rateLimit: { limit: 1_000_000_000, per: "1s" } } : {}),
        })),
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

/** Measure one of `--engines`: OmniQ on an engine, or a peer (`pg-peers` gives two rows). */
async function measureEngine(engine: string, W: Workload): Promise<Row[]> {
  if (engine.endsWith("+rate")) {
    const rows = await measureEngine(engine.slice(0, -"+rate".length), { ...W, rate: true });
    return rows.map((row) => ({ ...row, engine: `${row.engine} [rate limit 1e9/s]` }));
  }
  if (engine.endsWith("+groups")) {
    const groups = Number(flag("--groups") ?? 1_000);
    const rows = await measureEngine(engine.slice(0, -"+groups".length), { ...W, groups });
    return rows.map((row) => ({ ...row, engine: `${row.engine} [${groups} groups]` }));
  }
  switch (engine) {
    case "memory":
      return [
        await measure("memory:", () => Promise.resolve(["memory:", () => Promise.resolve()]), W),
      ];
    case "sqlite":
      return [await measure("sqlite: (file, WAL)", temp((dir) => `sqlite:${dir}/bench.db`), W)];
    case "file":
      return [await measure("file: (directory)", temp((dir) => `file:${dir}/store`), W)];
    case "kv":
      return [await measure("kv: (Deno KV file)", temp((dir) => `kv:${dir}/bench.kv`), W)];
    case "kv-queue":
      return [await measureKvQueue(W)];
    case "postgres":
      return [await measure("postgres: (OmniQ)", postgresSchema(await postgresUrl()), W)];
    case "redis":
      return [await measure("redis: (OmniQ)", prefixed(await redisUrl(), (id) => `b${id}:`), W)];
    case "bullmq":
      return [await measureBullmq(await redisUrl(), W)];
    case "nats":
      return [await measure("nats: (OmniQ)", prefixed(await natsUrl(), (id) => `b${id}`), W)];
    case "nats-raw":
      return [await measureJetStream(await natsUrl(), W)];
    case "pg-peers":
      return await measurePeers(await postgresUrl(), W);
    default:
      throw new Error(`--engines: unknown engine "${engine}"`);
  }
}

/** The median of some numbers (the mean of the middle two for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** OmniQ's rows and the peers each is compared with, by label. */
const PAIRS: { ours: RegExp; peers: RegExp; what: string }[] = [
  { ours: /^postgres:/, peers: /pg-boss|graphile/, what: "postgres" },
  { ours: /^redis:/, peers: /BullMQ/, what: "redis" },
  { ours: /^sqlite:/, peers: /^Deno KV/, what: "sqlite" },
  { ours: /^kv:/, peers: /^Deno KV/, what: "kv" },
  { ours: /^nats:/, peers: /raw JetStream/, what: "nats" },
];

const FIGURES = ["enqueueOne", "enqueueMany", "process", "p50", "p99"] as const;

/** The first line of a command's output, or `undefined` when it is not there. */
async function versionOf(command: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
      .output();
    const text = new TextDecoder().decode(out.stdout).trim() ||
      new TextDecoder().decode(out.stderr).trim();
    return text.split("\n")[0] || undefined;
  } catch {
    return undefined;
  }
}

/** The machine and the versions the figures come from, one line each. */
async function machine(): Promise<string[]> {
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1];
  const mem = (await Deno.readTextFile("/proc/meminfo").catch(() => ""))
    .match(/MemTotal:\s*(\d+)/)?.[1];
  let pgBin: string | undefined;
  try {
    pgBin = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name).sort().at(-1);
  } catch {
    // No Debian PostgreSQL: the bench used OMNIQ_BENCH_POSTGRES_URL or no postgres at all.
  }
  const servers = [
    pgBin && await versionOf(`/usr/lib/postgresql/${pgBin}/bin/postgres`, ["--version"]),
    await versionOf("redis-server", ["--version"]),
    await versionOf("nats-server", ["--version"]),
  ].filter(Boolean);
  return [
    `${cpu ?? "unknown CPU"}, ${navigator.hardwareConcurrency} cores, ${
      mem ? `${Math.round(Number(mem) / 1024 / 1024)} GiB` : "unknown memory"
    }; ${Deno.build.os} ${Deno.build.arch}`,
    `Deno ${Deno.version.deno}; servers: ${servers.join("; ")} (throwaway, on 127.0.0.1)`,
    "peers: pg-boss 12.38.0 (batchSize 10, NOTIFY), graphile-worker 0.18.0 (defaults; and " +
    "localQueue 10 + completeJobBatchDelay 0), BullMQ 6.7.0 under Node (defaults), raw JetStream, " +
    "Deno KV's own queue",
  ];
}

async function main(): Promise<void> {
  const TASKS = Number(flag("--tasks") ?? 20_000);
  const LATENCY_SAMPLES = Number(flag("--samples") ?? 500);
  const ROUNDS = Number(flag("--rounds") ?? 5);
  const ENGINES = (
    flag("--engines") ??
      "memory,sqlite,file,kv,kv-queue,postgres,pg-peers,redis,bullmq,nats,nats-raw"
  ).split(",");
  if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error("--rounds: a whole number >= 1");
  const W: Workload = { tasks: TASKS, samples: LATENCY_SAMPLES };
  // Every engine and its peers, interleaved round by round (A B, then B A, …), so a drift of
  // the machine's speed during the run falls on both sides of each ratio alike.
  const runs = new Map<string, Row[]>();
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? ENGINES : [...ENGINES].reverse();
    for (const engine of order) {
      for (const row of await measureEngine(engine, W)) {
        runs.set(row.engine, [...(runs.get(row.engine) ?? []), row]);
      }
    }
    console.error(`bench/throughput.ts: round ${round} of ${ROUNDS} done`);
  }

  const out: string[] = [];
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  out.push(
    `OmniQ throughput: ${TASKS.toLocaleString("en-US")} no-op tasks a phase, ${LATENCY_SAMPLES} ` +
      `latency samples, ${ROUNDS} interleaved round${ROUNDS > 1 ? "s" : ""}; medians, with ` +
      `the process figure's range over the rounds.`,
    "",
    ...(await machine()).map((line) => `- ${line}`),
    "",
    "| engine | enqueue one (tasks/s) | enqueueMany (tasks/s) | process, concurrency 10 (tasks/s) | process range | enqueue→start p50 | p99 |",
    "|---|---:|---:|---:|---:|---:|---:|",
  );
  const medians = new Map<string, Row>();
  for (const [engine, rows] of runs) {
    const m = { engine } as Row;
    for (const f of FIGURES) m[f] = median(rows.map((r) => r[f]));
    medians.set(engine, m);
    const procs = rows.map((r) => r.process);
    out.push(
      `| ${engine} | ${fmt(m.enqueueOne)} | ${fmt(m.enqueueMany)} | ${fmt(m.process)} | ${
        fmt(Math.min(...procs))
      }–${fmt(Math.max(...procs))} | ${m.p50.toFixed(2)} ms | ${m.p99.toFixed(2)} ms |`,
    );
  }

  // OmniQ against each peer measured beside it, round by round: the median of the rounds'
  // ratios and their range. Above 1 means OmniQ is faster (for latency, the peer's time over
  // OmniQ's).
  const x = (n: number) => `${n.toFixed(2)}×`;
  const cell = (ratios: number[]) =>
    `${x(median(ratios))} (${x(Math.min(...ratios))}–${x(Math.max(...ratios))})`;
  for (const pair of PAIRS) {
    const ours = [...runs.entries()].find(([label]) => pair.ours.test(label));
    const peers = [...runs.entries()].filter(([label]) => pair.peers.test(label));
    if (!ours || peers.length === 0) continue;
    out.push(
      "",
      `| ${
        ours[0]
      } vs (median of rounds, range) | enqueue one | enqueueMany | process | p50 | p99 |`,
      "|---|---:|---:|---:|---:|---:|",
    );
    for (const [label, rows] of peers) {
      const n = Math.min(rows.length, ours[1].length);
      const by = (f: (o: Row, p: Row) => number) =>
        cell(Array.from({ length: n }, (_, i) => f(ours[1][i], rows[i])));
      out.push(
        `| ${label} | ${by((o, p) => o.enqueueOne / p.enqueueOne)} | ${
          by((o, p) => o.enqueueMany / p.enqueueMany)
        } | ${by((o, p) => o.process / p.process)} | ${by((o, p) => p.p50 / o.p50)} | ${
          by((o, p) => p.p99 / o.p99)
        } |`,
      );
    }
  }
  const command = `deno task bench:throughput --tasks ${TASKS} --samples ${LATENCY_SAMPLES} ` +
    `--rounds ${ROUNDS}${flag("--engines") ? ` --engines ${flag("--engines")}` : ""}`;
  out.push("", `Made by \`${command}\`.`);
  console.log(`\n${out.join("\n")}`);
  if (Deno.args.includes("--readme")) await writeReadme(out.join("\n"));
  await pgServer?.stop();
  await redisServer?.stop();
  await natsServer?.stop();
}

const README_START = "<!-- bench:throughput:start -->";
const README_END = "<!-- bench:throughput:end -->";

/** Put the tables between the README's markers (the regenerated part of its Benchmarks). */
async function writeReadme(text: string): Promise<void> {
  const path = new URL("../README.md", import.meta.url);
  const readme = await Deno.readTextFile(path);
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start < 0 || end < start) {
    throw new Error(`README.md: no ${README_START} … ${README_END} section to regenerate`);
  }
  await Deno.writeTextFile(
    path,
    `${readme.slice(0, start + README_START.length)}\n\n${text}\n\n${readme.slice(end)}`,
  );
  console.error("bench/throughput.ts: README.md regenerated");
}

if (import.meta.main) await main();
