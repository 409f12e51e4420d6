/**
 * The server-side cost per task of OmniQ's `postgres:` and `redis:` engines, beside their
 * peers on the same throwaway server: what the database does for each task, not how fast
 * the client goes.
 *
 * Each engine enqueues N no-op tasks with `enqueueMany` (batches of 500), then processes
 * them with one async worker at concurrency 10 (`q.run({ until: "idle", concurrency: 10 })`),
 * as `bench/throughput.ts` does. The two phases are measured apart. A phase's clients
 * connect first (not counted), then the counters are reset or read, the work runs, the
 * clients disconnect, and the counters are read again: a phase counts its work and its
 * clients' disconnection, not their connection.
 *
 * PostgreSQL: a throwaway server on 127.0.0.1, started here the way `startPostgres` in
 * `tests/servers.ts` starts one (`fsync=off`), with `pg_stat_statements` loaded
 * (`shared_preload_libraries`, `track = all`), and checkpoints left to the `CHECKPOINT`
 * this script sends before each phase (`checkpoint_timeout=1h`, `max_wal_size=8GB`), so
 * no checkpoint lands inside a phase and each phase starts with the same full-page-image
 * debt. Per phase it reports:
 * - statements per task that clients sent (`pg_stat_statements`, `toplevel`), and those
 *   run for them inside functions, triggers and foreign-key checks; rows returned or
 *   affected; shared blocks hit, dirtied and written;
 * - the top statements by total execution time, with calls per task and mean time;
 * - WAL bytes per task (the `pg_current_wal_lsn()` difference) and, through
 *   `pg_walinspect`, by table with its indexes, and by relation and record type;
 * - tuples inserted, updated (HOT) and deleted per table (`pg_stat_user_tables`), index
 *   counts and sizes;
 * - the server's CPU time (every PostgreSQL process, from `/proc`) per 1,000 tasks.
 *
 * The PostgreSQL peers run on the same server after OmniQ, one at a time, each in a fresh
 * schema dropped after it: pg-boss 12.38.0 and graphile-worker 0.18.0 (defaults, and its
 * batched mode), configured as in `bench/peers_postgres.ts`. Their process phase ends when
 * the monitoring connection sees every job done (polled every 50 ms once the handlers ran).
 * The monitoring connection uses a role of its own, whose statements are left out.
 *
 * Redis: a throwaway server from `startRedis` (append-only file, `everysec`), with automatic
 * AOF rewrites off so none lands inside a phase. Per phase, from `INFO` (after
 * `CONFIG RESETSTAT`): `commandstats` per task (commands run inside Lua scripts and
 * functions included, as Redis counts them), the server's `used_cpu_sys + used_cpu_user`
 * per 1,000 tasks, network and AOF bytes per task, and memory kept per task. The peer is
 * BullMQ 6.7.0 under Node, installed in the cache directory `bench/peers_redis.ts` uses.
 *
 * This file reads the flags, runs the two halves and writes the report:
 * `bench/server_cost_postgres.ts` and `bench/server_cost_redis.ts` measure, and
 * `bench/server_cost_common.ts` holds what they share.
 *
 * ```sh
 * deno run --unstable-kv -A bench/server_cost.ts [--tasks 20000] [--engines postgres,redis] [--no-peers]
 * ```
 *
 * @module
 */
import { findPostgresBindir, runCommand } from "../tests/servers.ts";
import { flag } from "./throughput.ts";
import { BATCH, CONCURRENCY } from "./server_cost_common.ts";
import { measurePostgres, type PgPhaseCost, type StatementCost } from "./server_cost_postgres.ts";
import { measureRedis, type RedisPhaseCost } from "./server_cost_redis.ts";

// ---- formatting -------------------------------------------------------------------------

/** A number with as many decimals as its size deserves. */
function num(x: number): string {
  if (!Number.isFinite(x)) return "–";
  const a = Math.abs(x);
  const digits = a === 0 ? 0 : a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : a >= 0.01 ? 3 : 4;
  return x.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** A size in bytes, in kB or MB from 10 kB up. */
function size(bytes: number): string {
  if (bytes >= 10 * 1024 * 1024) return `${num(bytes / 1024 / 1024)} MB`;
  if (bytes >= 10 * 1024) return `${num(bytes / 1024)} kB`;
  return `${num(bytes)} B`;
}

function pct(part: number, whole: number): string {
  return whole > 0 ? `${(100 * part / whole).toFixed(1)}%` : "–";
}

/** A markdown table: the first `left` columns aligned left, the others right. */
function table(head: string[], rows: string[][], left = 1): string[] {
  return [
    `| ${head.join(" | ")} |`,
    `|${head.map((_, i) => (i < left ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ];
}

/** A statement's text on one line, without its schema, cut to `max` characters, as code. */
function statementText(query: string, schema: string, max = 110): string {
  let text = schema ? query.replaceAll(`"${schema}".`, "").replaceAll(`${schema}.`, "") : query;
  text = text.replace(/\s+/g, " ").trim();
  if (text.length > max) text = `${text.slice(0, max - 1)}…`;
  return `\`${text.replaceAll("|", "\\|").replaceAll("`", "'")}\``;
}

// ---- the PostgreSQL report --------------------------------------------------------------

/**
 * A foreign-key check PostgreSQL ran for a constraint; `pg_stat_statements` counts a deferred
 * one (run at `COMMIT`) as top-level, though no client sent it.
 */
const FOREIGN_KEY_CHECK = /^SELECT \$?\d+ FROM ONLY \S+ x WHERE .* FOR (KEY )?SHARE OF x$/is;

/** Whether a client sent the statement (not a function, trigger or foreign-key check). */
function clientSent(s: StatementCost): boolean {
  return s.toplevel && !FOREIGN_KEY_CHECK.test(s.query.replace(/\s+/g, " ").trim());
}

/** The markdown report of {@linkcode measurePostgres}'s phases. */
function postgresReport(phases: PgPhaseCost[]): string[] {
  const out: string[] = [];
  out.push(
    "### PostgreSQL: per task",
    "",
    "Statements: those clients sent; nested: those run inside functions or triggers, and " +
      "foreign-key checks (marked ↳ below, where a function's or trigger's time is also in " +
      "its caller's, and a statement's % is of the top-level total). Rows: returned or affected (`pg_stat_statements`). Tuple writes: inserted + " +
      "updated + deleted (`pg_stat_user_tables`). Blocks: shared buffers. WAL: the LSN " +
      "difference over the phase (autovacuum included), its full-page images apart. Statement " +
      "ms: execution time of the top-level statements (wall time, waits included). CPU: " +
      "every PostgreSQL process (user + system, from /proc).",
    "",
    ...table(
      [
        "engine",
        "phase",
        "tasks/s",
        "statements",
        "nested",
        "rows",
        "tuple writes",
        "blks hit",
        "blks dirtied",
        "blks written",
        "WAL bytes",
        "of it FPI",
        "WAL records",
        "statement ms / 1k tasks",
        "server CPU ms / 1k tasks",
      ],
      phases.map((p) => {
        const top = p.statements.filter((s) => s.toplevel);
        const sent = p.statements.filter(clientSent);
        const nested = p.statements.filter((s) => !clientSent(s));
        const sum = (rows: StatementCost[], k: keyof StatementCost) =>
          rows.reduce((a, s) => a + (s[k] as number), 0);
        const per = (x: number) => num(x / p.tasks);
        const writes = p.tables.reduce((a, t) => a + t.ins + t.upd + t.del, 0);
        return [
          p.engine,
          p.phase,
          num(p.tasks / p.seconds),
          per(sum(sent, "calls")),
          per(sum(nested, "calls")),
          per(sum(sent, "rows")),
          per(writes),
          per(sum(top, "hit")),
          per(sum(top, "dirtied")),
          per(sum(top, "written")),
          per(p.walBytes),
          per(p.wal.reduce((a, w) => a + w.fpiBytes, 0)),
          per(p.wal.reduce((a, w) => a + w.records, 0)),
          num(sum(top, "totalMs") / (p.tasks / 1000)),
          num(p.cpuSeconds * 1000 / (p.tasks / 1000)),
        ];
      }),
      2,
    ),
  );
  for (const p of phases) {
    const top = [...p.statements].sort((a, b) => b.totalMs - a.totalMs);
    const time = top.filter((s) => s.toplevel).reduce((a, s) => a + s.totalMs, 0);
    const per = (x: number) => num(x / p.tasks);
    out.push(
      "",
      `#### ${p.engine}, ${p.phase}: top statements by total execution time`,
      "",
      ...table(
        [
          "statement",
          "calls",
          "calls/task",
          "mean ms",
          "% of time",
          "rows/call",
          "blks hit/task",
          "dirtied/task",
          "written/task",
          "WAL bytes/task",
        ],
        top.slice(0, 6).map((s) => [
          `${clientSent(s) ? "" : "↳ "}${statementText(s.query, p.schema)}`,
          num(s.calls),
          per(s.calls),
          num(s.totalMs / s.calls),
          pct(s.totalMs, time),
          num(s.rows / s.calls),
          per(s.hit),
          per(s.dirtied),
          per(s.written),
          per(s.walBytes),
        ]),
      ),
    );
    if (top.length > 6) {
      const rest = top.slice(6);
      out.push(
        `| (${rest.length} more) | ${num(rest.reduce((a, s) => a + s.calls, 0))} | ${
          per(rest.reduce((a, s) => a + s.calls, 0))
        } | | ${pct(rest.reduce((a, s) => a + s.totalMs, 0), time)} | | | | | ${
          per(rest.reduce((a, s) => a + s.walBytes, 0))
        } |`,
      );
    }
    // WAL by table (with its indexes and TOAST), then the biggest relations.
    const families = new Map<string, { heap: number; index: number; fpi: number }>();
    for (const w of p.wal) {
      const key = w.table || w.relation;
      const f = families.get(key) ?? { heap: 0, index: 0, fpi: 0 };
      if (w.kind === "i") f.index += w.bytes;
      else f.heap += w.bytes;
      f.fpi += w.fpiBytes;
      families.set(key, f);
    }
    const walTotal = p.wal.reduce((a, w) => a + w.bytes, 0);
    out.push(
      "",
      `#### ${p.engine}, ${p.phase}: WAL by table (its indexes and TOAST with it), then by relation and record type, per task`,
      "",
      ...table(
        ["table", "table bytes", "index bytes", "total", "% of WAL", "of it FPI"],
        [...families.entries()]
          .sort((a, b) => b[1].heap + b[1].index - a[1].heap - a[1].index)
          .slice(0, 6)
          .map(([name, f]) => [
            name,
            per(f.heap),
            per(f.index),
            per(f.heap + f.index),
            pct(f.heap + f.index, walTotal),
            per(f.fpi),
          ]),
      ),
      "",
      ...table(
        ["relation", "kind", "WAL record", "records/task", "bytes/task", "% of WAL", "of it FPI"],
        p.wal.slice(0, 10).map((w) => [
          w.relation,
          { r: "table", i: "index", t: "TOAST", S: "sequence", "": "–" }[w.kind] ?? w.kind,
          w.record,
          per(w.records),
          per(w.bytes),
          pct(w.bytes, walTotal),
          per(w.fpiBytes),
        ]),
        3,
      ),
    );
    const enqueued = phases.find((e) => e.engine === p.engine && e.phase === "enqueue");
    if (p.phase === "process") {
      const before = new Map(enqueued?.tables.map((t) => [t.table, t]));
      out.push(
        "",
        `#### ${p.engine}: tables (tuples per task in each phase; sizes at the end)`,
        "",
        ...table(
          [
            "table",
            "indexes",
            "enqueue: inserted",
            "process: inserted",
            "updated",
            "of them HOT",
            "deleted",
            "heap size",
            "index size",
            "autovacuum/analyze runs",
          ],
          p.tables
            .filter((t) =>
              t.ins + t.upd + t.del + (before.get(t.table)?.ins ?? 0) > 0 || t.heapBytes > 8192
            )
            .sort((a, b) => b.heapBytes + b.indexBytes - a.heapBytes - a.indexBytes)
            .map((t) => [
              t.table,
              num(t.indexes),
              per(before.get(t.table)?.ins ?? 0),
              per(t.ins),
              per(t.upd),
              per(t.hot),
              per(t.del),
              size(t.heapBytes),
              size(t.indexBytes),
              num(t.autovacuums + (before.get(t.table)?.autovacuums ?? 0)),
            ]),
        ),
      );
    }
    if (p.lingering) {
      out.push("", `(${p.lingering} client connections were still open when counted.)`);
    }
  }
  return out;
}

// ---- the Redis report -------------------------------------------------------------------

const SCRIPT_CALLS = new Set(["fcall", "fcall_ro", "evalsha", "evalsha_ro", "eval", "eval_ro"]);

/** The markdown report of {@linkcode measureRedis}'s phases. */
function redisReport(phases: RedisPhaseCost[]): string[] {
  const out: string[] = [
    "### Redis: per task",
    "",
    "Commands: every call `INFO commandstats` counts, the `redis.call`s inside scripts and " +
    "functions included; script calls: `FCALL`/`EVALSHA`/`EVAL` (a pipeline carries many in one round " +
    "trip: BullMQ's `addBulk` sends one `EVALSHA` per job); " +
    "usec: the server's time in commands (a script's includes its inner calls). CPU: " +
    "`used_cpu_sys + used_cpu_user` (every thread, AOF fsyncs included). Memory: change of " +
    "`used_memory` over the phase.",
    "",
    ...table(
      [
        "engine",
        "phase",
        "tasks/s",
        "commands",
        "script calls",
        "other commands",
        "command usec",
        "net in bytes",
        "net out bytes",
        "AOF bytes",
        "memory bytes",
        "server CPU ms / 1k tasks",
      ],
      phases.map((p) => {
        let calls = 0;
        let scripts = 0;
        let usec = 0;
        for (const [name, c] of p.commands) {
          calls += c.calls;
          usec += c.usec;
          if (SCRIPT_CALLS.has(name)) scripts += c.calls;
        }
        const per = (x: number) => num(x / p.tasks);
        return [
          p.engine,
          p.phase,
          num(p.tasks / p.seconds),
          per(calls),
          per(scripts),
          per(calls - scripts),
          per(usec),
          per(p.netIn),
          per(p.netOut),
          per(p.aofBytes),
          per(p.memory),
          num(p.cpuSeconds * 1000 / (p.tasks / 1000)),
        ];
      }),
      2,
    ),
  ];
  for (const p of phases) {
    const usecTotal = [...p.commands.values()].reduce((a, c) => a + c.usec, 0);
    const sorted = [...p.commands.entries()].sort((a, b) => b[1].calls - a[1].calls);
    const rest = sorted.slice(14);
    const restCalls = rest.reduce((a, [, c]) => a + c.calls, 0);
    const restUsec = rest.reduce((a, [, c]) => a + c.usec, 0);
    out.push(
      "",
      `#### ${p.engine}, ${p.phase}: INFO commandstats`,
      "",
      ...table(
        ["command", "calls", "calls/task", "usec/call", "usec/task", "% of usec"],
        [
          ...sorted.slice(0, 14).map(([name, c]) => [
            `\`${name}\``,
            num(c.calls),
            num(c.calls / p.tasks),
            num(c.usec / c.calls),
            num(c.usec / p.tasks),
            pct(c.usec, usecTotal),
          ]),
          ...(rest.length
            ? [[
              `(${rest.length} more)`,
              num(restCalls),
              num(restCalls / p.tasks),
              "",
              num(restUsec / p.tasks),
              pct(restUsec, usecTotal),
            ]]
            : []),
        ],
      ),
    );
  }
  return out;
}

// ---- main -------------------------------------------------------------------------------

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    const r = await runCommand(command, args);
    return r.output.trim().split("\n")[0];
  } catch {
    return `${command}: not found`;
  }
}

async function main(): Promise<void> {
  const tasks = Number(flag("--tasks") ?? 20_000);
  if (!Number.isInteger(tasks) || tasks < BATCH) {
    throw new Error(`--tasks: a whole number >= ${BATCH}`);
  }
  const engines = (flag("--engines") ?? "postgres,redis").split(",");
  for (const e of engines) {
    if (e !== "postgres" && e !== "redis") {
      throw new Error(`--engines: unknown engine "${e}" (postgres, redis)`);
    }
  }
  const peers = !Deno.args.includes("--no-peers");
  const out: string[] = [
    `## Server-side cost per task: ${tasks.toLocaleString("en-US")} no-op tasks, enqueueMany ` +
    `(batches of ${BATCH}), then one async worker at concurrency ${CONCURRENCY}`,
    "",
  ];
  const cpu = (await Deno.readTextFile("/proc/cpuinfo").catch(() => ""))
    .match(/model name\s*:\s*(.+)/)?.[1];
  const versions: string[] = [];
  if (engines.includes("postgres")) {
    const bindir = await findPostgresBindir();
    if (bindir) versions.push(await firstLine(`${bindir}/postgres`, ["--version"]));
  }
  if (engines.includes("redis")) {
    versions.push(await firstLine("redis-server", ["--version"]));
    if (peers) versions.push(`Node ${await firstLine("node", ["--version"])}`);
  }
  out.push(
    `- ${
      cpu ?? "unknown CPU"
    }, ${navigator.hardwareConcurrency} cores; Deno ${Deno.version.deno}; ` +
      `${versions.join("; ")} (throwaway servers on 127.0.0.1)`,
    "- PostgreSQL: fsync=off as in tests/servers.ts, pg_stat_statements (track = all), a " +
      "CHECKPOINT before each phase and none inside one; Redis: appendonly everysec, no " +
      "automatic AOF rewrite.",
    `- peers: ${
      peers
        ? "pg-boss 12.38.0 (batchSize 10, NOTIFY), graphile-worker 0.18.0 (defaults; and " +
          "localQueue 10 + completeJobBatchDelay 0), BullMQ 6.7.0 under Node (defaults)"
        : "not measured (--no-peers)"
    }`,
    "",
  );
  if (engines.includes("postgres")) {
    out.push(...postgresReport(await measurePostgres({ tasks, peers })), "");
  }
  if (engines.includes("redis")) {
    out.push(...redisReport(await measureRedis({ tasks, peers })), "");
  }
  const args = [
    tasks !== 20_000 ? `--tasks ${tasks}` : "",
    flag("--engines") ? `--engines ${flag("--engines")}` : "",
    peers ? "" : "--no-peers",
  ].filter(Boolean).join(" ");
  out.push(`Made by \`deno task bench:server${args ? ` -- ${args}` : ""}\``);
  console.log(out.join("\n"));
}

if (import.meta.main) await main();
