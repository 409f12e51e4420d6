/**
 * The Redis half of `bench/server_cost.ts`: the cost of each phase of OmniQ's `redis:` engine
 * and of BullMQ (under Node) on a throwaway Redis server, from `INFO` ({@linkcode measureRedis}).
 * `server_cost.ts` describes the figures and writes the report.
 *
 * @module
 */
import { createClient } from "redis";
import { runCommand, startRedis } from "../tests/servers.ts";
import {
  BATCH,
  CONCURRENCY,
  type CostOptions,
  omniq,
  type Phase,
  randomId,
  type Subject,
} from "./server_cost_common.ts";

/** What one phase of one engine cost the Redis server. */
export interface RedisPhaseCost {
  /** The engine or peer. */
  engine: string;
  /** The phase. */
  phase: "enqueue" | "process";
  /** Tasks in the phase. */
  tasks: number;
  /** Wall time of the work, seconds. */
  seconds: number;
  /** `INFO commandstats` over the phase, by command: calls and microseconds. */
  commands: Map<string, { calls: number; usec: number }>;
  /** `used_cpu_sys + used_cpu_user`, seconds. */
  cpuSeconds: number;
  /** Bytes received from clients. */
  netIn: number;
  /** Bytes sent to clients. */
  netOut: number;
  /** Bytes the append-only file grew by. */
  aofBytes: number;
  /** Change of `used_memory`, bytes. */
  memory: number;
}

type RedisClient = ReturnType<typeof createClient>;

interface RedisInfo {
  fields: Map<string, string>;
  commands: Map<string, { calls: number; usec: number }>;
}

async function redisInfo(client: RedisClient): Promise<RedisInfo> {
  const text = String(await client.sendCommand(["INFO", "everything"]));
  const fields = new Map<string, string>();
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const line of text.split("\r\n")) {
    const colon = line.indexOf(":");
    if (colon < 0 || line.startsWith("#")) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1);
    if (key.startsWith("cmdstat_")) {
      const calls = Number(/calls=(\d+)/.exec(value)?.[1] ?? 0);
      const usec = Number(/usec=(\d+)/.exec(value)?.[1] ?? 0);
      commands.set(key.slice("cmdstat_".length), { calls, usec });
    } else fields.set(key, value);
  }
  return { fields, commands };
}

/** Measure one phase: reset the stats, work, disconnect, read `INFO` again. */
async function measureRedisPhase(
  mon: RedisClient,
  subject: Subject,
  phase: "enqueue" | "process",
  tasks: number,
): Promise<RedisPhaseCost> {
  const p = subject[phase];
  await p.open();
  await mon.sendCommand(["CONFIG", "RESETSTAT"]);
  const a = await redisInfo(mon);
  const t0 = performance.now();
  await p.work();
  const seconds = (performance.now() - t0) / 1000;
  await p.close();
  const b = await redisInfo(mon);
  const commands = new Map<string, { calls: number; usec: number }>();
  for (const [name, after] of b.commands) {
    const before = a.commands.get(name) ?? { calls: 0, usec: 0 };
    // The first INFO (this monitor's) is counted in the second; CONFIG RESETSTAT is not ours
    // to report either.
    const mine = name === "info" ? 1 : name === "config|resetstat" ? before.calls : 0;
    const calls = after.calls - before.calls - mine;
    if (calls > 0) commands.set(name, { calls, usec: after.usec - before.usec });
  }
  const d = (k: string) => Number(b.fields.get(k) ?? 0) - Number(a.fields.get(k) ?? 0);
  return {
    engine: subject.label,
    phase,
    tasks,
    seconds,
    commands,
    cpuSeconds: d("used_cpu_sys") + d("used_cpu_user"),
    netIn: d("total_net_input_bytes"),
    netOut: d("total_net_output_bytes"),
    aofBytes: d("aof_current_size"),
    memory: d("used_memory"),
  };
}

/** OmniQ's `redis:` engine under a fresh key prefix. */
function omniqRedis(base: string, tasks: number): Subject {
  const url = new URL(base);
  url.searchParams.set("prefix", `cost${randomId()}:`);
  return omniq("OmniQ redis:", url.href, "", tasks);
}

// BullMQ runs under Node, its home runtime, from the cache directory `bench/peers_redis.ts`
// installs it into; this driver is written there beside `peers_bullmq.mjs`. It takes one
// phase, says `ready` once connected, does the phase on a line from stdin, says `done`,
// then closes on the next line and says `closed`.
const BULLMQ_PACKAGES = ["bullmq@6.7.0", "ioredis@5.11.1"];
const BULLMQ_DRIVER =
  `// Written by bench/server_cost.ts: one phase of BullMQ's work, step by step on stdin.
import { createInterface } from "node:readline";
const { Queue, Worker } = await import(["bullmq"][0]);
const { url, tasks, queue: name, phase } = JSON.parse(process.argv[2]);
const server = new URL(url);
const connection = { host: server.hostname, port: Number(server.port || 6379),
  maxRetriesPerRequest: null };
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const say = (line) => process.stdout.write(line + "\\n");
const queue = new Queue(name, { connection });
await queue.waitUntilReady();
say("ready");
await lines.next();
if (phase === "enqueue") {
  for (let i = 0; i < tasks; i += ${BATCH}) {
    const n = Math.min(${BATCH}, tasks - i);
    await queue.addBulk(Array.from({ length: n }, (_, j) => ({ name: "noop", data: { i: i + j } })));
  }
} else {
  const worker = new Worker(name, () => Promise.resolve(),
    { connection, concurrency: ${CONCURRENCY}, autorun: false });
  let done = 0;
  const all = new Promise((resolve, reject) => {
    worker.on("completed", () => { if (++done === tasks) resolve(); });
    worker.on("failed", (_job, error) => reject(error));
  });
  worker.run();
  await all;
  await worker.close();
}
say("done");
await lines.next();
await queue.close();
say("closed");
`;

// The install step of `cacheDir()` and `install()` in `bench/peers_redis.ts`, which that
// module does not export: the same directory, so one install serves both benches.
async function bullmqDir(): Promise<string> {
  const base = Deno.env.get("XDG_CACHE_HOME") ?? `${Deno.env.get("HOME") ?? "/tmp"}/.cache`;
  const dir = `${base}/omniq-bench/${BULLMQ_PACKAGES.join("+").replaceAll("@", "-")}`;
  try {
    await Deno.stat(`${dir}/node_modules/bullmq/package.json`);
  } catch {
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/package.json`, '{ "private": true, "type": "module" }\n');
    const npm = await runCommand("npm", [
      "install",
      "--no-audit",
      "--no-fund",
      "--silent",
      ...BULLMQ_PACKAGES,
    ], { cwd: dir });
    if (!npm.ok) throw new Error(`npm install ${BULLMQ_PACKAGES.join(" ")}: ${npm.output}`);
  }
  await Deno.writeTextFile(`${dir}/server_cost_bullmq.mjs`, BULLMQ_DRIVER);
  return dir;
}

/** A child process's stdout, line by line. */
class Lines {
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }
  async next(): Promise<string> {
    for (;;) {
      const nl = this.#buffer.indexOf("\n");
      if (nl >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        return line;
      }
      const { value, done } = await this.#reader.read();
      if (done) throw new Error(`the BullMQ driver ended early: ${this.#buffer}`);
      this.#buffer += value;
    }
  }
}

/** One BullMQ phase in a Node process of its own. */
function bullmqPhase(dir: string, url: string, name: string, phase: string, tasks: number): Phase {
  let child: Deno.ChildProcess | undefined;
  let lines: Lines | undefined;
  let stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  const send = (line: string) => stdin!.write(new TextEncoder().encode(`${line}\n`));
  const expect = async (want: string) => {
    const line = await lines!.next();
    if (line !== want) throw new Error(`the BullMQ driver said "${line}", not "${want}"`);
  };
  return {
    open: async () => {
      child = new Deno.Command("node", {
        args: [
          `${dir}/server_cost_bullmq.mjs`,
          JSON.stringify({ url, tasks, queue: name, phase }),
        ],
        cwd: dir,
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
      lines = new Lines(child.stdout);
      stdin = child.stdin.getWriter();
      await expect("ready");
    },
    work: async () => {
      await send("go");
      await expect("done");
    },
    close: async () => {
      await send("close");
      await expect("closed");
      await stdin!.close();
      const status = await child!.status;
      if (!status.success) throw new Error(`the BullMQ driver exited with ${status.code}`);
    },
  };
}

/** BullMQ 6.7.0 under Node, defaults (completed jobs kept). */
async function bullmq(base: string, mon: RedisClient, tasks: number): Promise<Subject> {
  const dir = await bullmqDir();
  const name = `cost-${randomId()}`;
  return {
    label: "BullMQ 6.7.0 (Node)",
    schema: "",
    enqueue: bullmqPhase(dir, base, name, "enqueue", tasks),
    process: bullmqPhase(dir, base, name, "process", tasks),
    check: async () => {
      const n = Number(await mon.sendCommand(["ZCARD", `bull:${name}:completed`]));
      if (n !== tasks) throw new Error(`BullMQ: ${n} of ${tasks} jobs completed`);
    },
    drop: () => Promise.resolve(),
  };
}

/**
 * Measure OmniQ's `redis:` engine (and, with `peers`, BullMQ under Node) on a throwaway
 * Redis server, one after the other; the server is flushed between them.
 *
 * @param options How many tasks; whether to run BullMQ.
 * @returns Each subject's enqueue and process phases, in that order.
 * @throws When a subject loses tasks, or Node is missing for BullMQ.
 */
export async function measureRedis(options: CostOptions): Promise<RedisPhaseCost[]> {
  const { tasks } = options;
  const server = await startRedis();
  const mon = createClient({ url: server.url }) as RedisClient;
  mon.on("error", () => {});
  await mon.connect();
  try {
    // An AOF rewrite is a fork and a copy of the data set at the server's own pace; none
    // should land inside a phase.
    await mon.sendCommand(["CONFIG", "SET", "auto-aof-rewrite-percentage", "0"]);
    const subjects: (() => Promise<Subject>)[] = [
      () => Promise.resolve(omniqRedis(server.url, tasks)),
    ];
    if (options.peers) subjects.push(() => bullmq(server.url, mon, tasks));
    const out: RedisPhaseCost[] = [];
    for (const make of subjects) {
      const subject = await make();
      out.push(await measureRedisPhase(mon, subject, "enqueue", tasks));
      out.push(await measureRedisPhase(mon, subject, "process", tasks));
      await subject.check();
      await mon.sendCommand(["FLUSHALL"]);
      console.error(`bench/server_cost.ts: ${subject.label} done`);
    }
    return out;
  } finally {
    await mon.close();
    await server.stop();
  }
}
