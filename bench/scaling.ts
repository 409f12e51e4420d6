/**
 * How OmniQ's server and embedded engines scale, for `postgres:`, `redis:` and `sqlite:`:
 *
 * - processing no-op tasks with one async worker at concurrency 1, 10 and 100;
 * - processing with 1, 2 and 4 worker processes (each at concurrency 10), all started and
 *   ready before the clock starts, so process start-up is not counted;
 * - with 10k, 100k and 1M tasks already queued: the time of one `enqueue` (mean of 500) and
 *   the rate of the first 5,000 claims and completions (a flat line means no full scans).
 *
 * Run with `deno task bench:scaling` (`--engines postgres,redis`, `--tasks 20000` for the
 * first two tables, `--depths 10000,100000` to skip the million). Servers are throwaway
 * ones on loopback, as in `bench/throughput.ts`.
 *
 * @module
 */
import { defineTask, OmniQ } from "../mod.ts";
import { startPostgres, startRedis, type TestServer } from "../tests/servers.ts";
import { flag } from "./throughput.ts";

const noop = defineTask("bench-scale-noop", (_i: number) => undefined);

/** A fresh store per measurement, and a way to remove it. */
type Fresh = () => Promise<{ url: string; dispose: () => Promise<void> }>;

async function fill(q: OmniQ, count: number): Promise<void> {
  for (let i = 0; i < count; i += 1_000) {
    await q.enqueueMany(
      Array.from({ length: Math.min(1_000, count - i) }, (_, j) => ({ task: noop, args: [i + j] })),
    );
  }
}

/**
 * Open a fresh store and queue `tasks` no-op tasks; then `prepare` (untimed) gives the work
 * to time. Checks that every task completed, and removes the store.
 *
 * @returns Tasks/s over the timed work.
 */
async function timed(
  fresh: Fresh,
  tasks: number,
  prepare: (q: OmniQ, url: string) => Promise<() => Promise<void>>,
): Promise<number> {
  const { url, dispose } = await fresh();
  const q = await OmniQ.open(url);
  try {
    await fill(q, tasks);
    const work = await prepare(q, url);
    const t = performance.now();
    await work();
    const rate = tasks / ((performance.now() - t) / 1000);
    const done = (await q.stats()).total.completed;
    if (done !== tasks) throw new Error(`${url}: ${done} of ${tasks} completed`);
    return rate;
  } finally {
    await q.close();
    await dispose();
  }
}

/** Tasks/s of one worker at a concurrency. */
function atConcurrency(fresh: Fresh, tasks: number, concurrency: number): Promise<number> {
  return timed(fresh, tasks, (q) => Promise.resolve(() => q.run({ until: "idle", concurrency })));
}

const CHILD = new URL("./scaling_worker.ts", import.meta.url);

/**
 * Tasks/s of `processes` worker processes. Each child says "ready" once its store is open,
 * before the clock starts; then all are told to go at once.
 */
function inProcesses(fresh: Fresh, tasks: number, processes: number): Promise<number> {
  return timed(fresh, tasks, async (_q, url) => {
    const children = Array.from({ length: processes }, () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--unstable-kv", "-A", CHILD.href, url],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn());
    const readers = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
    for (const r of readers) {
      const { value } = await r.read();
      if (!value?.startsWith("ready")) throw new Error(`a worker process said ${value}`);
    }
    return async () => {
      for (const c of children) {
        const w = c.stdin.getWriter();
        await w.write(new TextEncoder().encode("go\n"));
        await w.close();
      }
      const statuses = await Promise.all(children.map((c) => c.status));
      for (const r of readers) await r.cancel();
      if (statuses.some((s) => !s.success)) throw new Error("a worker process failed");
    };
  });
}

/** With `depth` tasks queued: mean ms of one enqueue, and tasks/s of the first claims. */
async function atDepth(fresh: Fresh, depth: number): Promise<[number, number]> {
  const { url, dispose } = await fresh();
  const q = await OmniQ.open(url);
  try {
    await fill(q, depth);
    const ONE = 500;
    let t = performance.now();
    for (let i = 0; i < ONE; i++) await q.enqueue(noop, [i]);
    const enqueueMs = (performance.now() - t) / ONE;
    const CLAIMS = 5_000;
    let seen = 0;
    const w = q.worker({ concurrency: 10 });
    const enough = new Promise<void>((resolve) => {
      q.on("completed", () => {
        if (++seen === CLAIMS) resolve();
      });
    });
    t = performance.now();
    await w.start();
    await enough;
    const rate = CLAIMS / ((performance.now() - t) / 1000);
    await w.stop();
    return [enqueueMs, rate];
  } finally {
    await q.close();
    await dispose();
  }
}

function schemaOf(base: string): Fresh {
  return () => {
    const url = new URL(base);
    url.searchParams.set("schema", `omniq_scale_${crypto.randomUUID().slice(0, 8)}`);
    return Promise.resolve({ url: url.href, dispose: () => Promise.resolve() });
  };
}

function prefixOf(base: string): Fresh {
  return () => {
    const url = new URL(base);
    url.searchParams.set("prefix", `s${crypto.randomUUID().slice(0, 8)}:`);
    return Promise.resolve({ url: url.href, dispose: () => Promise.resolve() });
  };
}

const sqliteFile: Fresh = async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-scale-" });
  return { url: `sqlite:${dir}/scale.db`, dispose: () => Deno.remove(dir, { recursive: true }) };
};

function n(x: number): string {
  return Math.round(x).toLocaleString("en-US");
}

async function main(): Promise<void> {
  const TASKS = Number(flag("--tasks") ?? 20_000);
  const ENGINES = (flag("--engines") ?? "postgres,redis,sqlite").split(",");
  const DEPTHS = (flag("--depths") ?? "10000,100000,1000000").split(",").map(Number);
  const servers: TestServer[] = [];
  const stores: [string, Fresh][] = [];
  for (const engine of ENGINES) {
    if (engine === "postgres") {
      const s = await startPostgres();
      servers.push(s);
      stores.push(["postgres:", schemaOf(s.url)]);
    } else if (engine === "redis") {
      const s = await startRedis();
      servers.push(s);
      stores.push(["redis:", prefixOf(s.url)]);
    } else if (engine === "sqlite") stores.push(["sqlite: (file, WAL)", sqliteFile]);
    else throw new Error(`--engines: unknown engine "${engine}"`);
  }
  try {
    const lines: string[] = [];
    const say = (line: string) => {
      lines.push(line);
      console.error(line);
    };
    say(`\nProcessing ${n(TASKS)} no-op tasks, one worker process (tasks/s):\n`);
    say("| engine | concurrency 1 | concurrency 10 | concurrency 100 |");
    say("|---|---:|---:|---:|");
    for (const [name, fresh] of stores) {
      const rates = [];
      for (const c of [1, 10, 100]) rates.push(await atConcurrency(fresh, TASKS, c));
      say(`| ${name} | ${rates.map(n).join(" | ")} |`);
    }
    say(`\nProcessing ${n(TASKS)} no-op tasks, worker processes at concurrency 10 (tasks/s):\n`);
    say("| engine | 1 process | 2 processes | 4 processes |");
    say("|---|---:|---:|---:|");
    for (const [name, fresh] of stores) {
      const rates = [];
      for (const p of [1, 2, 4]) rates.push(await inProcesses(fresh, TASKS, p));
      say(`| ${name} | ${rates.map(n).join(" | ")} |`);
    }
    say(
      "\nWith tasks already queued: one `enqueue` (mean ms) / the first 5,000 processed " +
        "(tasks/s):\n",
    );
    say(`| engine | ${DEPTHS.map((d) => `${n(d)} queued`).join(" | ")} |`);
    say(`|---|${DEPTHS.map(() => "---:").join("|")}|`);
    for (const [name, fresh] of stores) {
      const cells = [];
      for (const d of DEPTHS) {
        const [ms, rate] = await atDepth(fresh, d);
        cells.push(`${ms.toFixed(2)} ms / ${n(rate)}`);
      }
      say(`| ${name} | ${cells.join(" | ")} |`);
    }
    const args = Deno.args.length ? ` ${Deno.args.join(" ")}` : "";
    say(`\nMade by \`deno task bench:scaling${args}\`.`);
    console.log(lines.join("\n"));
  } finally {
    for (const s of servers) await s.stop();
  }
}

if (import.meta.main) await main();
