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
 * ```sh
 * deno run --unstable-kv -A bench/server_cost.ts [--tasks 20000] [--engines postgres,redis] [--no-peers]
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { createClient } from "redis";
import { PgBoss } from "pg-boss";
import {
  Logger,
  makeWorkerUtils,
  run as runGraphile,
  type Runner,
  type WorkerUtils,
} from "graphile-worker";
import { defineTask, OmniQ } from "../mod.ts";
import {
  ensurePackage,
  freePort,
  launch,
  type Launched,
  runCommand,
  startRedis,
} from "../tests/servers.ts";

const BATCH = 500;
const CONCURRENCY = 10;
const DONE_TIMEOUT_MS = 300_000;
/** The PostgreSQL role the measurements use; its own statements are left out. */
const MONITOR_ROLE = "bench_monitor";

const noop = defineTask("bench-noop", (_i: number) => undefined);

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i === -1 ? undefined : Deno.args[i + 1];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function randomId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 10);
}

/** Resolves once `test()` is true, asking every `everyMs`; throws after `timeoutMs`. */
async function until(
  what: string,
  test: () => Promise<boolean>,
  everyMs = 20,
  timeoutMs = DONE_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Counts handler calls; `reached(n)` resolves once there were `n`. */
class Counter {
  calls = 0;
  #target = Infinity;
  #resolve?: () => void;
  reached(n: number): Promise<void> {
    this.#target = n;
    return new Promise<void>((resolve) => {
      this.#resolve = resolve;
      if (this.calls >= n) resolve();
    });
  }
  hit(): void {
    if (++this.calls >= this.#target) this.#resolve?.();
  }
}

/** One phase of a measured engine: connect (not counted), work, disconnect. */
interface Phase {
  /** Connect and get ready; not counted. */
  open(): Promise<void>;
  /** The work: enqueue, or process until every task is done. */
  work(): Promise<void>;
  /** Disconnect; counted with the work (a worker's stop is part of its run). */
  close(): Promise<void>;
}

/** An engine or a peer: its two phases, then a check and its clean-up (not counted). */
interface Subject {
  /** The row label. */
  label: string;
  /** The schema holding its tables (PostgreSQL). */
  schema: string;
  /** Enqueue the tasks. */
  enqueue: Phase;
  /** Process them. */
  process: Phase;
  /** Throw unless every task completed; run after the last counters are read. */
  check(): Promise<void>;
  /** Remove what it stored. */
  drop(): Promise<void>;
}

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

// ---- PostgreSQL -------------------------------------------------------------------------

/** A throwaway PostgreSQL server started by {@linkcode startPostgresWithStatements}. */
interface PgServer {
  url: string;
  dir: string;
  stop(): Promise<void>;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/** Debian's PostgreSQL binaries, the newest version first. */
async function postgresBindir(): Promise<string | undefined> {
  let versions: string[] = [];
  try {
    versions = [...Deno.readDirSync("/usr/lib/postgresql")].map((e) => e.name)
      .sort((a, b) => Number(b) - Number(a));
  } catch {
    return undefined;
  }
  for (const v of versions) {
    const dir = `/usr/lib/postgresql/${v}/bin`;
    if (await isExecutable(`${dir}/initdb`) && await isExecutable(`${dir}/postgres`)) return dir;
  }
  return undefined;
}

async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  for (const line of (await Deno.readTextFile("/etc/passwd")).split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`user "${name}" not found in /etc/passwd`);
}

/**
 * PostgreSQL as `startPostgres` in `tests/servers.ts` starts it (initdb with the superuser
 * `omniq`, `fsync=off`, on 127.0.0.1), with `pg_stat_statements` preloaded and checkpoints
 * left to the script. `startPostgres` takes no server settings, so this does its steps with
 * the helpers that module exports.
 */
async function startPostgresWithStatements(): Promise<PgServer> {
  const bindir = await ensurePackage(postgresBindir, "postgresql");
  const dir = await Deno.makeTempDir({ prefix: "omniq-pgcost-" });
  const asUser = Deno.uid() === 0 ? "postgres" : undefined;
  try {
    const pwfile = `${dir}/pwfile`;
    await Deno.writeTextFile(pwfile, "omniq\n");
    if (asUser) {
      const { uid, gid } = await userIds(asUser);
      await Deno.chown(dir, uid, gid);
      await Deno.chown(pwfile, uid, gid);
    }
    const initdb = await runCommand(`${bindir}/initdb`, [
      `--pgdata=${dir}/data`,
      "--username=omniq",
      `--pwfile=${pwfile}`,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--encoding=UTF8",
      "--no-locale",
      "--no-sync",
    ], { asUser, cwd: dir });
    if (!initdb.ok) throw new Error(`initdb failed (exit ${initdb.code}):\n${initdb.output}`);
    await Deno.remove(pwfile);
  } catch (error) {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw error;
  }
  const port = freePort();
  const settings = [
    `listen_addresses=127.0.0.1`,
    "max_connections=300",
    "fsync=off",
    "shared_preload_libraries=pg_stat_statements",
    "pg_stat_statements.track=all",
    "pg_stat_statements.max=10000",
    "checkpoint_timeout=1h",
    "max_wal_size=8GB",
  ];
  const server: Launched = await launch({
    name: "postgres",
    command: `${bindir}/postgres`,
    args: [
      "-D",
      `${dir}/data`,
      "-p",
      String(port),
      "-k",
      dir,
      ...settings.flatMap((s) => ["-c", s]),
    ],
    stopSignal: "SIGINT",
    asUser,
    port,
    dir,
    log: `${dir}/server.log`,
    probe: async () =>
      (await runCommand(`${bindir}/pg_isready`, ["-h", "127.0.0.1", "-p", String(port), "-q"]))
        .ok,
  });
  const createdb = await runCommand(`${bindir}/createdb`, [
    "-h",
    dir,
    "-p",
    String(port),
    "-U",
    "omniq",
    "omniq",
  ], { cwd: dir });
  if (!createdb.ok) {
    await server.stop();
    throw new Error(`createdb failed (exit ${createdb.code}):\n${createdb.output}`);
  }
  return { url: `postgres://omniq:omniq@127.0.0.1:${port}/omniq`, dir, stop: server.stop };
}

/** Fields 3 on of /proc/PID/stat (state, ppid, …), or `undefined` once the process is gone. */
async function procStat(pid: number): Promise<string[] | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** The postmaster's children (it is single-threaded, so its one thread forked them all). */
async function childPids(pid: number): Promise<number[]> {
  const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/children`);
  return text.trim().split(/\s+/).filter(Boolean).map(Number).sort((a, b) => a - b);
}

/**
 * CPU seconds of the postmaster and its children: the live ones' own, and the reaped ones'
 * (in the postmaster's `cutime`/`cstime`). Read again while the set of children changed
 * during a reading, so a child reaped meanwhile is counted once.
 */
async function postgresCpuSeconds(dataDir: string, ticks: number): Promise<number> {
  const postmaster = Number((await Deno.readTextFile(`${dataDir}/postmaster.pid`)).split("\n")[0]);
  for (let attempt = 0;; attempt++) {
    const before = await childPids(postmaster);
    // f[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    const pm = (await procStat(postmaster))!;
    let total = Number(pm[11]) + Number(pm[12]) + Number(pm[13]) + Number(pm[14]);
    for (const pid of before) {
      const f = await procStat(pid);
      if (f) total += Number(f[11]) + Number(f[12]);
    }
    const after = await childPids(postmaster);
    if (before.join() === after.join() || attempt >= 50) return total / ticks;
    await sleep(10);
  }
}

/** One statement's counters over a phase (`pg_stat_statements`). */
export interface StatementCost {
  /** The normalized text. */
  query: string;
  /** Sent by a client (`true`), or run inside a function or trigger. */
  toplevel: boolean;
  /** Executions. */
  calls: number;
  /** Execution time, ms. */
  totalMs: number;
  /** Rows returned or affected. */
  rows: number;
  /** Shared blocks found in the buffer cache. */
  hit: number;
  /** Shared blocks read from the OS. */
  read: number;
  /** Shared blocks it dirtied. */
  dirtied: number;
  /** Shared blocks it wrote out itself. */
  written: number;
  /** WAL it generated, bytes. */
  walBytes: number;
  /** Full-page images it logged. */
  walFpi: number;
}

/** The WAL of one record type in one relation (or touching none) over a phase (`pg_walinspect`). */
export interface WalShare {
  /** The relation, without its schema; for records without a block, their resource manager. */
  relation: string;
  /** `r` table, `i` index, `t` TOAST, `''` none. */
  kind: string;
  /** The table it belongs to (itself for a table). */
  table: string;
  /** The resource manager and record type, e.g. `Heap UPDATE`. */
  record: string;
  /** WAL records of that type whose first block is in it. */
  records: number;
  /** Their bytes, full-page images included. */
  bytes: number;
  /** Bytes of full-page images. */
  fpiBytes: number;
}

/** One table's tuple counters over a phase and its size at the phase's end. */
export interface TableCost {
  /** The table, without its schema. */
  table: string;
  /** Its indexes. */
  indexes: number;
  /** Tuples inserted. */
  ins: number;
  /** Tuples updated. */
  upd: number;
  /** Of them, HOT updates (no index entry written). */
  hot: number;
  /** Tuples deleted. */
  del: number;
  /** Heap bytes at the end. */
  heapBytes: number;
  /** Index bytes at the end. */
  indexBytes: number;
  /** Autovacuum and autoanalyze runs during the phase. */
  autovacuums: number;
}

/** What one phase of one engine cost the PostgreSQL server. */
export interface PgPhaseCost {
  /** The engine or peer. */
  engine: string;
  /** The phase. */
  phase: "enqueue" | "process";
  /** The schema of its tables. */
  schema: string;
  /** Tasks in the phase. */
  tasks: number;
  /** Wall time of the work, seconds. */
  seconds: number;
  /** Every statement run, top-level and nested. */
  statements: StatementCost[];
  /** WAL written, bytes (LSN difference). */
  walBytes: number;
  /** WAL by relation. */
  wal: WalShare[];
  /** CPU time of the server's processes, seconds. */
  cpuSeconds: number;
  /** The engine's tables. */
  tables: TableCost[];
  /** Client connections still open after the wait (should be 0). */
  lingering: number;
}

type Sql = postgres.Sql;

interface TableSnapshot {
  relname: string;
  ins: number;
  upd: number;
  hot: number;
  del: number;
  heap: number;
  idx: number;
  indexes: number;
  vacuums: number;
}

async function tableSnapshot(mon: Sql, schema: string): Promise<Map<string, TableSnapshot>> {
  const rows = await mon<TableSnapshot[]>`
    SELECT relname, n_tup_ins::float8 AS ins, n_tup_upd::float8 AS upd,
      n_tup_hot_upd::float8 AS hot, n_tup_del::float8 AS del,
      pg_relation_size(relid)::float8 AS heap, pg_indexes_size(relid)::float8 AS idx,
      (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid)::float8 AS indexes,
      (autovacuum_count + autoanalyze_count)::float8 AS vacuums
    FROM pg_stat_user_tables t WHERE schemaname = ${schema}`;
  return new Map(rows.map((r) => [r.relname, r]));
}

async function clientBackends(mon: Sql): Promise<number> {
  const [row] = await mon`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE backend_type = 'client backend' AND usename <> ${MONITOR_ROLE}`;
  return row.n;
}

/** Measure one phase: reset, work, disconnect, read every counter. */
async function measurePgPhase(
  mon: Sql,
  server: PgServer,
  ticks: number,
  subject: Subject,
  phase: "enqueue" | "process",
  tasks: number,
): Promise<PgPhaseCost> {
  const p = subject[phase];
  await p.open();
  await mon`CHECKPOINT`;
  await mon`SELECT pg_stat_statements_reset()`;
  const tables0 = await tableSnapshot(mon, subject.schema);
  const [{ lsn: lsn0 }] = await mon`SELECT pg_current_wal_lsn()::text AS lsn`;
  const cpu0 = await postgresCpuSeconds(`${server.dir}/data`, ticks);
  const t0 = performance.now();
  await p.work();
  const seconds = (performance.now() - t0) / 1000;
  await p.close();
  // A backend sends its table counters when it exits (an idle one may hold them for 10 s).
  let lingering = 0;
  await until(
    "clients to disconnect",
    async () => (lingering = await clientBackends(mon)) === 0,
    20,
    15_000,
  ).catch(() => {});
  const cpu1 = await postgresCpuSeconds(`${server.dir}/data`, ticks);
  const [{ lsn: lsn1, bytes: walBytes }] = await mon`
    SELECT pg_current_wal_lsn()::text AS lsn,
      pg_wal_lsn_diff(pg_current_wal_lsn(), ${lsn0}::pg_lsn)::float8 AS bytes`;
  const statements = await mon<StatementCost[]>`
    SELECT query, toplevel, calls::float8 AS calls, total_exec_time AS "totalMs",
      rows::float8 AS rows, shared_blks_hit::float8 AS hit, shared_blks_read::float8 AS read,
      shared_blks_dirtied::float8 AS dirtied, shared_blks_written::float8 AS written,
      wal_bytes::float8 AS "walBytes", wal_fpi::float8 AS "walFpi"
    FROM pg_stat_statements
    WHERE userid <> (SELECT oid FROM pg_roles WHERE rolname = ${MONITOR_ROLE})`;
  const tables1 = await tableSnapshot(mon, subject.schema);
  // pg_walinspect reads only WAL already flushed; the WAL writer flushes within 200 ms.
  await until(
    "WAL flush",
    async () => (await mon`SELECT pg_current_wal_flush_lsn() >= ${lsn1}::pg_lsn AS ok`)[0].ok,
    20,
    10_000,
  );
  // (`[0-9]`, not `\d`: a tagged template's text has its escapes cooked.)
  // The first block a record touches names its relation (PostgreSQL 15's pg_walinspect has
  // no per-block function); records touching none are "(no block)".
  const wal = await mon<WalShare[]>`
    WITH r AS (
      SELECT resource_manager, record_type, record_length, fpi_length,
        substring(block_ref from 'rel ([0-9]+)/')::oid AS spc,
        substring(block_ref from 'rel [0-9]+/[0-9]+/([0-9]+)')::oid AS filenode
      FROM pg_get_wal_records_info(${lsn0}::pg_lsn, ${lsn1}::pg_lsn)
    ), g AS (
      SELECT spc, filenode, resource_manager AS rmgr, record_type,
        count(*)::float8 AS records, sum(record_length)::float8 AS bytes,
        sum(fpi_length)::float8 AS fpi
      FROM r GROUP BY 1, 2, 3, 4
    ), named AS (
      SELECT g.*, pg_filenode_relation(CASE WHEN spc = 1663 THEN 0 ELSE spc END, filenode)
        AS rel
      FROM g
    )
    SELECT coalesce(c.relname,
        CASE WHEN filenode IS NULL THEN '(no block)' ELSE 'filenode ' || filenode END)
        AS relation,
      coalesce(c.relkind::text, '') AS kind,
      coalesce(ic.relname, tc.relname, c.relname, '') AS "table",
      rmgr || ' ' || record_type AS record, records, bytes, fpi AS "fpiBytes"
    FROM named
    LEFT JOIN pg_class c ON c.oid = named.rel
    LEFT JOIN pg_index i ON i.indexrelid = c.oid
    LEFT JOIN pg_class ic ON ic.oid = i.indrelid
    LEFT JOIN pg_class tc ON tc.reltoastrelid = c.oid
    ORDER BY bytes DESC`;
  const tables: TableCost[] = [];
  for (const [name, after] of tables1) {
    const before = tables0.get(name);
    const d = (k: "ins" | "upd" | "hot" | "del" | "vacuums") => after[k] - (before?.[k] ?? 0);
    tables.push({
      table: name,
      indexes: after.indexes,
      ins: d("ins"),
      upd: d("upd"),
      hot: d("hot"),
      del: d("del"),
      heapBytes: after.heap,
      indexBytes: after.idx,
      autovacuums: d("vacuums"),
    });
  }
  return {
    engine: subject.label,
    phase,
    schema: subject.schema,
    tasks,
    seconds,
    statements: [...statements],
    walBytes,
    wal: [...wal],
    cpuSeconds: cpu1 - cpu0,
    tables,
    lingering,
  };
}

/** OmniQ on the store at `href` (a fresh schema or key prefix). */
function omniq(label: string, href: string, schema: string, tasks: number): Subject {
  let q: OmniQ | undefined;
  const open = async () => void (q = await OmniQ.open(href));
  const close = () => q!.close();
  return {
    label,
    schema,
    enqueue: {
      open,
      work: async () => {
        for (let i = 0; i < tasks; i += BATCH) {
          await q!.enqueueMany(
            Array.from(
              { length: Math.min(BATCH, tasks - i) },
              (_, j) => ({ task: noop, args: [i + j] }),
            ),
          );
        }
      },
      close,
    },
    process: { open, work: () => q!.run({ until: "idle", concurrency: CONCURRENCY }), close },
    check: async () => {
      const c = await OmniQ.open(href);
      try {
        const stats = await c.stats();
        if (stats.total.completed !== tasks) {
          throw new Error(`${label}: lost tasks: ${JSON.stringify(stats.total)}`);
        }
      } finally {
        await c.close();
      }
    },
    drop: () => Promise.resolve(),
  };
}

/** OmniQ's `postgres:` engine in a fresh schema. */
function omniqPostgres(base: string, tasks: number): Subject {
  const schema = `omniq_cost_${randomId()}`;
  const url = new URL(base);
  url.searchParams.set("schema", schema);
  return omniq("OmniQ postgres:", url.href, schema, tasks);
}

/** pg-boss as `bench/peers_postgres.ts` runs it: batchSize 10, LISTEN/NOTIFY. */
function pgBoss(base: string, mon: Sql, tasks: number): Subject {
  const schema = `pgboss_cost_${randomId()}`;
  const queue = "bench-noop";
  let boss: PgBoss | undefined;
  const errors: unknown[] = [];
  const start = async () => {
    boss = new PgBoss({ connectionString: base, schema, useListenNotify: true, schedule: false });
    boss.on("error", (e) => errors.push(e));
    await boss.start();
  };
  const stop = async () => {
    await boss!.stop({ graceful: true, close: true, timeout: 10_000 });
    if (errors.length) throw new Error(`pg-boss reported errors: ${String(errors[0])}`);
  };
  const completed = async () =>
    Number(
      (await mon`SELECT count(*)::int AS n FROM ${mon(schema)}.job
        WHERE name = ${queue} AND state = 'completed'`)[0].n,
    );
  return {
    label: "pg-boss 12.38.0",
    schema,
    enqueue: {
      open: async () => {
        await start();
        await boss!.createQueue(queue, { notify: true });
      },
      work: async () => {
        for (let i = 0; i < tasks; i += BATCH) {
          await boss!.insert(
            queue,
            Array.from({ length: Math.min(BATCH, tasks - i) }, (_, j) => ({ data: { i: i + j } })),
          );
        }
      },
      close: stop,
    },
    process: {
      open: start,
      work: async () => {
        const handled = new Counter();
        const all = handled.reached(tasks);
        await boss!.work(queue, {
          localConcurrency: 1,
          batchSize: CONCURRENCY,
          burstWhenBatchFull: true,
          pollingIntervalSeconds: 0.5,
          notifyPollingIntervalSeconds: 0.5,
        }, async (jobs) => {
          await Promise.all(jobs.map(() => Promise.resolve(handled.hit())));
        });
        await all;
        await until("pg-boss: completed jobs", async () => (await completed()) === tasks, 50);
      },
      close: stop,
    },
    check: async () => {
      const n = await completed();
      if (n !== tasks) throw new Error(`pg-boss: ${n} of ${tasks} jobs completed`);
    },
    drop: async () => void (await mon`DROP SCHEMA IF EXISTS ${mon(schema)} CASCADE`),
  };
}

/** graphile-worker as `bench/peers_postgres.ts` runs it, with its defaults or a preset. */
function graphileWorker(
  base: string,
  mon: Sql,
  tasks: number,
  label: string,
  preset?: GraphileConfig.Preset,
): Subject {
  const schema = `graphile_cost_${randomId()}`;
  const logger = new Logger(() => () => {});
  let utils: WorkerUtils | undefined;
  let runner: Runner | undefined;
  const remaining = async () =>
    Number((await mon`SELECT count(*)::int AS n FROM ${mon(schema)}._private_jobs`)[0].n);
  return {
    label,
    schema,
    enqueue: {
      open: async () => {
        utils = await makeWorkerUtils({ connectionString: base, schema, logger });
        await utils.migrate();
      },
      work: async () => {
        for (let i = 0; i < tasks; i += BATCH) {
          await utils!.addJobs(
            Array.from(
              { length: Math.min(BATCH, tasks - i) },
              (_, j) => ({ identifier: "bench_noop", payload: { i: i + j } }),
            ),
          );
        }
      },
      close: async () => await utils!.release(),
    },
    process: {
      open: () => Promise.resolve(),
      work: async () => {
        const handled = new Counter();
        const all = handled.reached(tasks);
        runner = await runGraphile({
          connectionString: base,
          schema,
          logger,
          concurrency: CONCURRENCY,
          pollInterval: 100,
          noHandleSignals: true,
          preset,
          taskList: { bench_noop: () => void handled.hit() },
        });
        await all;
        await until("graphile-worker: jobs left", async () => (await remaining()) === 0, 50);
      },
      close: () => runner!.stop(),
    },
    check: async () => {
      const n = await remaining();
      if (n !== 0) throw new Error(`${label}: ${n} jobs left`);
    },
    drop: async () => void (await mon`DROP SCHEMA IF EXISTS ${mon(schema)} CASCADE`),
  };
}

/** What {@linkcode measurePostgres} and {@linkcode measureRedis} run. */
export interface CostOptions {
  /** Tasks enqueued, then processed. */
  tasks: number;
  /** Whether to measure the peers too (pg-boss and graphile-worker; BullMQ). */
  peers: boolean;
}

/**
 * Measure OmniQ's `postgres:` engine (and, with `peers`, pg-boss and graphile-worker) on a
 * throwaway PostgreSQL server with `pg_stat_statements`, one subject after the other, each
 * in a schema of its own, dropped after it.
 *
 * @param options How many tasks; whether to run the peers.
 * @returns Each subject's enqueue and process phases, in that order.
 * @throws When a subject loses tasks.
 */
export async function measurePostgres(options: CostOptions): Promise<PgPhaseCost[]> {
  const { tasks } = options;
  const server = await startPostgresWithStatements();
  const admin = postgres(server.url, { max: 1, onnotice: () => {} });
  let mon: Sql | undefined;
  try {
    await admin.unsafe(`CREATE ROLE ${MONITOR_ROLE} LOGIN SUPERUSER PASSWORD 'monitor'`);
    await admin`CREATE EXTENSION pg_stat_statements`;
    await admin`CREATE EXTENSION pg_walinspect`;
    // Its connection would count as a client still connected.
    await admin.end();
    const monUrl = new URL(server.url);
    monUrl.username = MONITOR_ROLE;
    monUrl.password = "monitor";
    mon = postgres(monUrl.href, { max: 1, onnotice: () => {} });
    const ticks = Number((await runCommand("getconf", ["CLK_TCK"])).output.trim()) || 100;
    const subjects: (() => Subject)[] = [() => omniqPostgres(server.url, tasks)];
    if (options.peers) {
      const m = mon;
      subjects.push(
        () => pgBoss(server.url, m, tasks),
        () => graphileWorker(server.url, m, tasks, "graphile-worker 0.18.0"),
        () =>
          graphileWorker(
            server.url,
            m,
            tasks,
            "graphile-worker 0.18.0 (localQueue 10, completeJobBatchDelay 0)",
            { worker: { localQueue: { size: CONCURRENCY }, completeJobBatchDelay: 0 } },
          ),
      );
    }
    const out: PgPhaseCost[] = [];
    for (const make of subjects) {
      const subject = make();
      out.push(await measurePgPhase(mon, server, ticks, subject, "enqueue", tasks));
      out.push(await measurePgPhase(mon, server, ticks, subject, "process", tasks));
      await subject.check();
      await subject.drop();
      console.error(`bench/server_cost.ts: ${subject.label} done`);
    }
    return out;
  } finally {
    await mon?.end();
    await admin.end();
    await server.stop();
  }
}

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

// ---- Redis ------------------------------------------------------------------------------

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
    const bindir = await postgresBindir();
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
