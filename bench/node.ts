/**
 * The throughput workloads under Node beside Deno, in one run (`deno task bench:node`): for
 * `memory:`, `sqlite:`, `postgres:` and `redis:`, the figures of `bench/throughput.ts`'s
 * {@linkcode measure} from the sources under Deno, then those of `bench/node_throughput.mjs`
 * (the same steps) from the npm build under Node, engine by engine, on the same PostgreSQL and
 * Redis servers, followed by the ratio Node/Deno of each figure.
 *
 * The npm build (`scripts/build_npm.ts`, into `dist/npm/`) is packed and installed into a Node
 * project of its own, `dist/bench-node/` (kept between runs; on Node 20, with better-sqlite3 12
 * for `sqlite:`, as `tests/node/suite.ts` does). `--no-build` installs the `dist/npm/` already
 * there. The servers are throwaway ones on loopback unless `OMNIQ_BENCH_POSTGRES_URL` /
 * `OMNIQ_BENCH_REDIS_URL` name others.
 *
 * ```sh
 * deno task bench:node -- --tasks 10000 --samples 300 --engines memory,sqlite,postgres,redis
 * ```
 *
 * @module
 */
import { buildNpm } from "../scripts/build_npm.ts";
import { startPostgres, startRedis, type TestServer } from "../tests/servers.ts";
import {
  flag,
  measure,
  postgresSchema,
  prefixed,
  type Row,
  type StoreFactory,
  temp,
  type Workload,
} from "./throughput.ts";

const ROOT = new URL("../", import.meta.url);
const PROJECT = new URL("dist/bench-node/", ROOT);
const PROGRAM = "node_throughput.mjs";

const WORKLOAD: Workload = {
  tasks: Number(flag("--tasks") ?? 10_000),
  samples: Number(flag("--samples") ?? 300),
};
const ENGINES = (flag("--engines") ?? "memory,sqlite,postgres,redis").split(",");
for (const e of ENGINES) {
  if (!["memory", "sqlite", "postgres", "redis"].includes(e)) {
    throw new Error(`--engines: "${e}" is not one of memory, sqlite, postgres, redis`);
  }
}

async function run(cmd: string, args: string[], cwd: URL): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" }).output();
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new Error(`"${cmd}" is not on the PATH`);
    throw error;
  }
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited with ${out.code}:\n${text.decode(out.stdout)}${
        text.decode(out.stderr)
      }`,
    );
  }
  return text.decode(out.stdout);
}

/** The Node version on the PATH, e.g. `v20.20.2`. */
async function nodeVersion(): Promise<string> {
  return (await run("node", ["--version"], ROOT)).trim();
}

/**
 * Build (unless `--no-build`), pack and install the package into {@linkcode PROJECT}, with the
 * workload program beside it (Node resolves `omniq` from the program's own directory).
 */
async function install(major: number): Promise<void> {
  const npm = Deno.args.includes("--no-build") ? new URL("dist/npm/", ROOT) : await buildNpm();
  await Deno.mkdir(PROJECT, { recursive: true });
  for await (const e of Deno.readDir(PROJECT)) {
    if (e.name.endsWith(".tgz")) await Deno.remove(new URL(e.name, PROJECT));
  }
  const path = (u: URL) => decodeURIComponent(u.pathname);
  const tarball = (await run("npm", [
    "pack",
    path(npm),
    "--pack-destination",
    path(PROJECT),
    "--loglevel=error",
  ], ROOT)).trim().split("\n").at(-1)!;
  await Deno.writeTextFile(
    new URL("package.json", PROJECT),
    JSON.stringify({ name: "omniq-bench-node", private: true, type: "module" }, null, 2),
  );
  // Node 20 has no node:sqlite: the optional driver the package names.
  const extras = major < 22 ? ["better-sqlite3@12"] : [];
  await run("npm", [
    "install",
    "--no-audit",
    "--no-fund",
    "--prefer-offline",
    "--loglevel=error",
    path(new URL(tarball, PROJECT)),
    ...extras,
  ], PROJECT);
  await Deno.copyFile(new URL(PROGRAM, import.meta.url), new URL(PROGRAM, PROJECT));
}

/** The Node program's row for one engine, on the given servers. */
async function measureNode(
  engine: string,
  servers: { postgres?: string; redis?: string },
): Promise<Row & { runtime: string }> {
  const config = JSON.stringify({ engine, ...WORKLOAD, ...servers });
  const out = await run("node", ["--no-warnings", PROGRAM, config], PROJECT);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

/** Fresh stores for the Deno side, made as `node_throughput.mjs` makes them. */
function denoStores(engine: string, servers: { postgres?: string; redis?: string }): StoreFactory {
  switch (engine) {
    case "memory":
      return () => Promise.resolve(["memory:", () => Promise.resolve()]);
    case "sqlite":
      return temp((dir) => `sqlite:${dir}/bench.db`);
    case "postgres":
      return postgresSchema(servers.postgres!);
    default:
      return prefixed(servers.redis!, (id) => `b${id}:`);
  }
}

const version = await nodeVersion();
await install(Number(/^v(\d+)/.exec(version)?.[1]));

let pgServer: TestServer | undefined;
let redisServer: TestServer | undefined;
try {
  const servers: { postgres?: string; redis?: string } = {};
  if (ENGINES.includes("postgres")) {
    servers.postgres = Deno.env.get("OMNIQ_BENCH_POSTGRES_URL") ??
      (pgServer = await startPostgres()).url;
  }
  if (ENGINES.includes("redis")) {
    servers.redis = Deno.env.get("OMNIQ_BENCH_REDIS_URL") ?? (redisServer = await startRedis()).url;
  }

  // Engine by engine, Deno then Node, so each pair runs under the same load.
  const pairs: { engine: string; deno: Row; node: Row }[] = [];
  for (const engine of ENGINES) {
    const deno = await measure(engine, denoStores(engine, servers), WORKLOAD);
    const node = await measureNode(engine, servers);
    pairs.push({ engine, deno, node });
  }

  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  const ms = (n: number) => `${n.toFixed(2)} ms`;
  console.log(
    `\nOmniQ ${
      WORKLOAD.tasks.toLocaleString("en-US")
    } no-op tasks; latency over ${WORKLOAD.samples} samples`,
  );
  console.log(
    `Deno ${Deno.version.deno} (sources), Node ${version} (npm build), ${navigator.hardwareConcurrency} cores\n`,
  );
  console.log(
    "| engine | runtime | enqueue one (tasks/s) | enqueueMany (tasks/s) | process, concurrency 10 (tasks/s) | enqueue→start p50 | p99 |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|");
  for (const { engine, deno, node } of pairs) {
    for (const [runtime, r] of [["Deno", deno], ["Node", node]] as const) {
      console.log(
        `| ${engine}: | ${runtime} | ${fmt(r.enqueueOne)} | ${fmt(r.enqueueMany)} | ${
          fmt(r.process)
        } | ${ms(r.p50)} | ${ms(r.p99)} |`,
      );
    }
  }
  // Node's figure over Deno's, for every column: above 1 means Node is faster for
  // throughput, and slower for latency.
  const x = (n: number) => `${n.toFixed(2)}×`;
  console.log(
    "\nNode/Deno (throughput: above 1 is Node faster; latency: above 1 is Node slower)\n",
  );
  console.log("| engine | enqueue one | enqueueMany | process | p50 | p99 |");
  console.log("|---|---:|---:|---:|---:|---:|");
  for (const { engine, deno, node } of pairs) {
    console.log(
      `| ${engine}: | ${x(node.enqueueOne / deno.enqueueOne)} | ${
        x(node.enqueueMany / deno.enqueueMany)
      } | ${x(node.process / deno.process)} | ${x(node.p50 / deno.p50)} | ${
        x(node.p99 / deno.p99)
      } |`,
    );
  }
} finally {
  await pgServer?.stop();
  await redisServer?.stop();
}
