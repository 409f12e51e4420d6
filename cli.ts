/**
 * The OmniQ command line: a standalone worker, and commands to enqueue, inspect, retry and
 * cancel tasks, read events and manage schedules.
 *
 * ```sh
 * deno run -A jsr:@omniq/omniq/cli worker --config omniq.yaml
 * deno run -A jsr:@omniq/omniq/cli worker --backend sqlite:./omniq.db --tasks ./tasks.ts \
 *   --queues high,default --concurrency 8 --type thread
 * deno run -A jsr:@omniq/omniq/cli status
 * ```
 *
 * The store comes from `--config FILE` (YAML or JSON), `--backend URL`, and `OMNIQ_*`
 * variables, in that order of precedence. A worker stops on SIGINT or SIGTERM: it stops
 * claiming, lets running tasks finish within the grace period, hands the rest back to
 * their queues, and exits 0.
 *
 * @module
 */

import "./backends/builtin.ts";
import "./workers/builtin.ts";
import { configFromEnv, loadConfig, resolveConfig } from "./src/config_sources.ts";
import { ConfigError, OmniQError } from "./src/errors.ts";
import { runtime } from "./src/runtime/mod.ts";
import { OmniQ, type OmniQConfig } from "./src/omniq.ts";
import type {
  EnqueueOptions,
  EventType,
  QueueStats,
  TaskState,
  WorkerOptions,
} from "./src/types.ts";
import type { Worker } from "./workers/async.ts";
import { delay } from "./src/kit/async.ts";
import { EVENT_TYPES, TASK_STATES } from "./src/types.ts";

const USAGE: Record<string, string> = {
  main: `omniq: a task queue for Deno

Usage: omniq <command> [options]

Commands:
  worker                 run a worker until SIGINT/SIGTERM
  enqueue TASK ARGS_JSON enqueue a task (ARGS_JSON is a JSON array)
  status                 task counts per queue and state
  list                   list tasks
  result ID              print a task's result
  retry ID               run a failed, cancelled or expired task again
  cancel ID              cancel a task
  events                 print events (--follow to tail)
  schedules              list schedules; 'schedules pause ID', 'schedules resume ID'
  queues                 list queues and whether paused; 'queues pause Q', 'queues resume Q'
  dashboard              serve the web dashboard and /metrics until SIGINT/SIGTERM

Store options (every command):
  --config FILE          a YAML or JSON configuration file
  --backend URL          the store URL (e.g. sqlite:./omniq.db)
  --tasks A,B            task module paths or URLs

Run 'omniq <command> --help' for a command's options.`,
  worker: `Usage: omniq worker [options]

  --queues A,B           queues to drain, in this order (default: default)
  --concurrency N        tasks at once (default: 10)
  --type T               async, thread or process (default: async)
  --lease D              lease length (default: 30s)
  --grace D              how long a stop lets running tasks finish (default: 30s)
  --no-scheduler         do not fire stored schedules
Stops on SIGINT or SIGTERM, hands back unfinished tasks, and exits 0.`,
  enqueue: `Usage: omniq enqueue TASK ARGS_JSON [options]

  --queue Q  --priority N  --delay D  --id ID  --key K  --retries N  --timeout D
  --dead-letter Q        the queue the task moves to once its attempts are spent
  --throttle D           with --key: duplicates within D of this enqueue get its id
  --debounce D           with --key: due D after the last enqueue with the key
  --age-after D          queued this long, the task's priority rises to 9
  --group G              the task's group: groups are claimed round-robin
  --group-concurrency N  with --group: at most N of the group run at once (default: 1)
Prints the task id.`,
  status: `Usage: omniq status [--watch]

Prints task counts per queue and state, and the paused queues; with --watch, again every
2 s until SIGINT.`,
  list: `Usage: omniq list [--state S] [--queue Q] [--task T] [--limit N]`,
  result: `Usage: omniq result ID

Prints the result record as JSON; exits 1 when the task has none yet.`,
  retry: `Usage: omniq retry ID`,
  cancel: `Usage: omniq cancel ID`,
  events: `Usage: omniq events [--task ID] [--type T] [--queue Q] [--limit N] [--follow]`,
  schedules: `Usage: omniq schedules [pause ID | resume ID]`,
  queues: `Usage: omniq queues [pause Q | resume Q]

Lists the queues that hold tasks or are paused, with their counts; 'pause Q' stops every
worker of the store from claiming Q's tasks (they stay queued) until 'resume Q'.`,
  dashboard: `Usage: omniq dashboard [options]

  --port N               the port (default: 8710; 0 takes a free one)
  --hostname H           the address (default: 127.0.0.1; anything else needs a token)
  --token T              a secret every request must carry (or OMNIQ_DASHBOARD_TOKEN)
  --read-only            show, never change
Prints the address (with the token, when set, for the first visit), serves until SIGINT
or SIGTERM, and exits 0.`,
};

const BOOLEAN_FLAGS = new Set(["help", "follow", "no-scheduler", "read-only", "watch"]);

/** Parsed arguments: positionals and `--flag value` / `--flag=value` options. */
interface Parsed {
  positional: string[];
  flags: Map<string, string | true>;
}

function parse(args: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (!arg.startsWith("--")) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf("=");
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    if (eq !== -1) flags.set(name, arg.slice(eq + 1));
    else if (BOOLEAN_FLAGS.has(name)) flags.set(name, true);
    else if (i + 1 < args.length && !args[i + 1].startsWith("--")) flags.set(name, args[++i]);
    else if (!KNOWN_ANYWHERE.has(name)) throw new UsageError(`unknown option --${name}`);
    else throw new UsageError(`--${name} needs a value`);
  }
  return { positional, flags };
}

class UsageError extends Error {}

/** `omniq enqueue`'s text flags, and the option each sets. */
const ENQUEUE_FLAGS: Record<string, keyof EnqueueOptions> = {
  queue: "queue",
  delay: "delay",
  id: "id",
  key: "key",
  timeout: "timeout",
  "dead-letter": "deadLetter",
  throttle: "throttle",
  debounce: "debounce",
  group: "group",
  "age-after": "ageAfter",
};
/** `omniq enqueue`'s whole-number flags, and the option each sets. */
const ENQUEUE_COUNTS: Record<string, keyof EnqueueOptions> = {
  priority: "priority",
  retries: "retries",
  "group-concurrency": "groupConcurrency",
};
const KNOWN: Record<string, string[]> = {
  worker: ["queues", "concurrency", "type", "lease", "grace", "no-scheduler"],
  enqueue: [...Object.keys(ENQUEUE_FLAGS), ...Object.keys(ENQUEUE_COUNTS)],
  status: ["watch"],
  list: ["state", "queue", "task", "limit"],
  result: [],
  retry: [],
  cancel: [],
  events: ["task", "type", "queue", "limit", "follow"],
  schedules: [],
  queues: [],
  dashboard: ["port", "hostname", "token", "read-only"],
};
const COMMON = ["config", "backend", "tasks", "help"];
const KNOWN_ANYWHERE = new Set([...COMMON, ...Object.values(KNOWN).flat()]);
/** How many positionals each command takes, after its name. */
const POSITIONALS: Record<string, number> = {
  worker: 0,
  enqueue: 2,
  status: 0,
  list: 0,
  result: 1,
  retry: 1,
  cancel: 1,
  events: 0,
  schedules: 2,
  queues: 2,
  dashboard: 0,
};

function flag(p: Parsed, name: string): string | undefined {
  const v = p.flags.get(name);
  return v === true ? undefined : v;
}

function integer(p: Parsed, name: string): number | undefined {
  const v = flag(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new UsageError(`--${name}: expected a whole number, got "${v}"`);
  return Number(v);
}

/** A flag whose value must be one of a fixed set. */
function oneOf<T extends string>(
  p: Parsed,
  name: string,
  values: readonly T[],
): T | undefined {
  const v = flag(p, name);
  if (v !== undefined && !(values as readonly string[]).includes(v)) {
    throw new UsageError(`--${name}: expected one of ${values.join(", ")}, got "${v}"`);
  }
  return v as T | undefined;
}

function list(p: Parsed, name: string): string[] | undefined {
  return flag(p, name)?.split(",").map((s) => s.trim()).filter(Boolean);
}

async function open(p: Parsed): Promise<OmniQ> {
  let env: OmniQConfig = {};
  try {
    env = configFromEnv();
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // No --allow-env: the environment is simply not a source.
  }
  const code: OmniQConfig = {};
  const backend = flag(p, "backend");
  if (backend) code.backend = backend;
  const tasks = list(p, "tasks");
  if (tasks) code.tasks = tasks;
  const file = flag(p, "config");
  const config = await resolveConfig({
    code,
    file: file ? await loadConfig(file) : undefined,
    env,
  });
  return await OmniQ.open(config);
}

function print(value: unknown): void {
  console.log(JSON.stringify(value, (_k, v) => typeof v === "bigint" ? `${v}n` : v, 2));
}

/**
 * A worker's progress on stderr: on a terminal one line kept up to date (done, failed,
 * retried, running, rate); elsewhere a plain line every {@linkcode LOG_EVERY_MS} when
 * something changed, and a last one at the end.
 */
class Progress {
  static readonly TTY_EVERY_MS = 250;
  static readonly LOG_EVERY_MS = 10_000;
  readonly #w: Worker;
  readonly #tty: boolean;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #since = Date.now();
  #last = { at: Date.now(), ended: 0, line: "" };

  constructor(w: Worker, tty: boolean) {
    this.#w = w;
    this.#tty = tty;
    this.#timer = setInterval(
      () => this.#show(false),
      tty ? Progress.TTY_EVERY_MS : Progress.LOG_EVERY_MS,
    );
    runtime.unrefTimer(this.#timer);
  }

  #line(): string {
    const { completed, failed, retried } = this.#w.counts;
    const now = Date.now();
    const ended = completed + failed + retried;
    const rate = (ended - this.#last.ended) / Math.max(0.001, (now - this.#last.at) / 1000);
    this.#last.at = now;
    this.#last.ended = ended;
    return `omniq: ${completed} done, ${failed} failed, ${retried} retried, ` +
      `${this.#w.active} running, ${rate.toFixed(rate < 10 ? 1 : 0)}/s`;
  }

  #show(final: boolean): void {
    const line = this.#line();
    const body = line.replace(/, [\d.]+\/s$/, "");
    if (this.#tty) {
      runtime.writeStderrSync(new TextEncoder().encode(`\r\x1b[2K${line}${final ? "\n" : ""}`));
    } else if (final || body !== this.#last.line) {
      const total = this.#w.counts.completed + this.#w.counts.failed + this.#w.counts.retried;
      const overall = total / Math.max(0.001, (Date.now() - this.#since) / 1000);
      console.error(final ? `${body}; ${overall.toFixed(1)}/s overall` : line);
    }
    this.#last.line = body;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#show(true);
  }
}

async function worker(p: Parsed): Promise<number> {
  const q = await open(p);
  const options: WorkerOptions = {};
  const queues = list(p, "queues");
  if (queues) options.queues = queues;
  const concurrency = integer(p, "concurrency");
  if (concurrency !== undefined) options.concurrency = concurrency;
  const type = flag(p, "type");
  if (type) options.type = type as WorkerOptions["type"];
  const lease = flag(p, "lease");
  if (lease) options.lease = lease;
  const grace = flag(p, "grace");
  if (grace) options.shutdownGrace = grace;
  if (p.flags.has("no-scheduler")) options.scheduler = false;
  const w = q.worker(options);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    if (stopping) return;
    console.error("omniq: stopping: finishing running tasks, handing back the rest");
    stopping = w.stop();
  };
  const unlisten = runtime.onTerminate(stop);
  await w.start();
  console.error(`omniq: worker ${w.id} started (${options.type ?? "async"})`);
  const progress = new Progress(w, runtime.isTerminal("stderr"));
  await w.done;
  await stopping;
  progress.stop();
  unlisten();
  await q.close();
  console.error("omniq: worker stopped");
  return 0;
}

function printStatus(stats: QueueStats): void {
  const states = Object.keys(stats.total) as TaskState[];
  const rows = [
    ["queue", ...states],
    ...Object.entries(stats.queues).map(([queue, c]) => [
      queue,
      ...states.map((s) => String(c[s])),
    ]),
    ["total", ...states.map((s) => String(stats.total[s]))],
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  "));
  if (stats.paused?.length) console.log(`paused: ${stats.paused.join(", ")}`);
}

/** `status --watch`: the table again every 2 s (in place on a terminal) until a signal. */
async function watchStatus(q: OmniQ): Promise<number> {
  const stopped = new AbortController();
  const unlisten = runtime.onTerminate(() => stopped.abort());
  const tty = runtime.isTerminal("stdout");
  try {
    while (!stopped.signal.aborted) {
      const stats = await q.stats();
      if (tty) runtime.writeStdoutSync(new TextEncoder().encode("\x1b[H\x1b[2J"));
      else console.log(`-- ${new Date().toISOString()}`);
      printStatus(stats);
      await delay(2_000, { signal: stopped.signal }).catch(() => {});
    }
  } finally {
    unlisten();
  }
  return 0;
}

async function dashboard(p: Parsed): Promise<number> {
  let token = flag(p, "token");
  if (token === undefined) {
    try {
      token = runtime.env("OMNIQ_DASHBOARD_TOKEN") || undefined;
    } catch {
      // No --allow-env: no token from the environment.
    }
  }
  const q = await open(p);
  try {
    const { serveDashboard } = await import("./dashboard/mod.ts");
    const server = await serveDashboard(q, {
      port: integer(p, "port"),
      hostname: flag(p, "hostname"),
      token,
      readOnly: p.flags.has("read-only"),
    });
    const first = token === undefined
      ? server.url
      : `${server.url}?token=${encodeURIComponent(token)}`;
    console.error(`omniq: dashboard on ${server.url} (metrics: ${server.url}metrics)`);
    console.log(first);
    await new Promise<void>((resolve) => {
      const unlisten = runtime.onTerminate(() => {
        unlisten();
        resolve();
      });
    });
    await server.close();
  } finally {
    await q.close();
  }
  return 0;
}

async function command(name: string, p: Parsed): Promise<number> {
  if (name === "worker") return await worker(p);
  if (name === "dashboard") return await dashboard(p);
  await using q = await open(p);
  const [, a, b] = p.positional;
  switch (name) {
    case "enqueue": {
      if (!a || b === undefined) throw new UsageError("enqueue needs TASK and ARGS_JSON");
      let args: unknown;
      try {
        args = JSON.parse(b);
      } catch {
        throw new UsageError(`ARGS_JSON: expected a JSON array, got ${b}`);
      }
      const options: Record<string, string | number> = {};
      for (const [name, key] of Object.entries(ENQUEUE_FLAGS)) {
        const v = flag(p, name);
        if (v !== undefined) options[key] = v;
      }
      for (const [name, key] of Object.entries(ENQUEUE_COUNTS)) {
        const v = integer(p, name);
        if (v !== undefined) options[key] = v;
      }
      console.log(await q.enqueue(a, args as unknown[], options as EnqueueOptions));
      return 0;
    }
    case "status": {
      if (p.flags.has("watch")) return await watchStatus(q);
      printStatus(await q.stats());
      return 0;
    }
    case "list": {
      const state = oneOf<TaskState>(p, "state", TASK_STATES);
      const tasks = await q.list({
        ...(state ? { state } : {}),
        ...(flag(p, "queue") ? { queue: flag(p, "queue") } : {}),
        ...(flag(p, "task") ? { task: flag(p, "task") } : {}),
        limit: integer(p, "limit") ?? 100,
      });
      for (const t of tasks) {
        console.log(
          `${t.id}  ${t.task}  ${t.queue}  ${t.state}  attempts=${t.attempts}  ${t.createdAt.toISOString()}`,
        );
      }
      return 0;
    }
    case "result": {
      if (!a) throw new UsageError("result needs ID");
      const result = await q.result(a);
      if (!result) {
        console.error(`omniq: no result for ${a} (yet)`);
        return 1;
      }
      print(result);
      return 0;
    }
    case "retry":
    case "cancel": {
      if (!a) throw new UsageError(`${name} needs ID`);
      const changed = name === "retry" ? await q.retry(a) : await q.cancel(a);
      console.log(
        changed ? `${name === "retry" ? "queued again" : "cancelled"}: ${a}` : "no change",
      );
      return changed ? 0 : 1;
    }
    case "events": {
      const controller = new AbortController();
      const stop = () => controller.abort();
      const follow = p.flags.has("follow");
      const type = oneOf<EventType>(p, "type", EVENT_TYPES);
      const unlisten = follow ? runtime.onTerminate(stop) : undefined;
      try {
        for await (
          const e of q.events({
            ...(flag(p, "task") ? { taskId: flag(p, "task") } : {}),
            ...(type ? { type } : {}),
            ...(flag(p, "queue") ? { queue: flag(p, "queue") } : {}),
            ...(integer(p, "limit") !== undefined ? { limit: integer(p, "limit") } : {}),
            follow,
            signal: controller.signal,
          })
        ) {
          console.log(
            `${e.at.toISOString()}  ${e.type.padEnd(16)}  ${e.taskId ?? "-"}  ${e.attempt ?? ""}  ${
              e.data ? JSON.stringify(e.data) : ""
            }`,
          );
        }
      } finally {
        unlisten?.();
      }
      return 0;
    }
    case "queues": {
      if (a === "pause" || a === "resume") {
        if (!b) throw new UsageError(`queues ${a} needs Q`);
        const changed = a === "pause" ? await q.pauseQueue(b) : await q.resumeQueue(b);
        console.log(changed ? `${a}d: ${b}` : "no change");
        return changed ? 0 : 1;
      }
      if (a !== undefined) throw new UsageError(`queues: unknown action "${a}"`);
      const stats = await q.stats();
      const names = [...new Set([...Object.keys(stats.queues), ...stats.paused])].sort();
      for (const queue of names) {
        const c = stats.queues[queue];
        const counts = c
          ? `queued=${c.queued + c.scheduled} running=${c.running} waiting=${c.waiting}`
          : "empty";
        console.log(`${queue}  ${stats.paused.includes(queue) ? "paused" : "active"}  ${counts}`);
      }
      return 0;
    }
    case "schedules": {
      if (a === "pause" || a === "resume") {
        if (!b) throw new UsageError(`schedules ${a} needs ID`);
        const changed = a === "pause" ? await q.pauseSchedule(b) : await q.resumeSchedule(b);
        console.log(changed ? `${a}d: ${b}` : "no change");
        return changed ? 0 : 1;
      }
      if (a !== undefined) throw new UsageError(`schedules: unknown action "${a}"`);
      for (const s of await q.schedules()) {
        console.log(
          `${s.id}  ${s.task}  ${s.cron ?? `every ${s.every}ms`}  ${
            s.paused ? "paused" : "active"
          }  next=${s.nextRunAt?.toISOString() ?? "-"}`,
        );
      }
      return 0;
    }
  }
  throw new UsageError(`unknown command "${name}"`);
}

/**
 * Run the command line with arguments; returns the exit code.
 *
 * @param args The arguments, without the program name.
 * @returns 0 on success, 1 when a command had nothing to do, 2 for bad arguments.
 */
export async function main(args: string[]): Promise<number> {
  let name = "main";
  try {
    const p = parse(args);
    name = p.positional[0] ?? "main";
    if (name !== "main" && !Object.hasOwn(KNOWN, name)) {
      throw new UsageError(`unknown command "${name}"`);
    }
    if (p.flags.has("help") || name === "main") {
      console.log(USAGE[name]);
      return name === "main" && !p.flags.has("help") ? 2 : 0;
    }
    for (const key of p.flags.keys()) {
      if (!COMMON.includes(key) && !KNOWN[name].includes(key)) {
        throw new UsageError(`${name}: unknown option --${key}`);
      }
    }
    if (p.positional.length - 1 > POSITIONALS[name]) {
      throw new UsageError(
        `${name}: unexpected argument "${p.positional[POSITIONALS[name] + 1]}"`,
      );
    }
    return await command(name, p);
  } catch (error) {
    if (name === "main") name = args.find((a) => Object.hasOwn(KNOWN, a)) ?? "main";
    if (error instanceof UsageError) {
      console.error(
        `omniq: ${error.message}\n\n${Object.hasOwn(USAGE, name) ? USAGE[name] : USAGE.main}`,
      );
      return 2;
    }
    if (error instanceof OmniQError) {
      console.error(`omniq: ${error.name}: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) runtime.exit(await main(runtime.args()));
