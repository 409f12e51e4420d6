/**
 * The PostgreSQL half of `bench/server_cost.ts`: a throwaway server with
 * `pg_stat_statements` and `pg_walinspect`, and the cost of each phase of OmniQ's
 * `postgres:` engine, pg-boss and graphile-worker on it ({@linkcode measurePostgres}).
 * `server_cost.ts` describes the figures and writes the report.
 *
 * @module
 */
import postgres from "postgres";
import { PgBoss } from "pg-boss";
import {
  Logger,
  makeWorkerUtils,
  run as runGraphile,
  type Runner,
  type WorkerUtils,
} from "graphile-worker";
import { runCommand, startPostgres, type TestServer } from "../tests/servers.ts";
import { delay } from "../src/kit/async.ts";
import {
  CONCURRENCY,
  type CostOptions,
  inBatches,
  omniq,
  randomId,
  type Subject,
  until,
} from "./server_cost_common.ts";
import { Counter, graphileRunner } from "./peers_postgres.ts";

/** The PostgreSQL role the measurements use; its own statements are left out. */
const MONITOR_ROLE = "bench_monitor";

/**
 * PostgreSQL as the tests start it (`startPostgres`: initdb with the superuser `omniq`,
 * `fsync=off`, on 127.0.0.1), with `pg_stat_statements` preloaded and checkpoints left to
 * the script.
 */
function startPostgresWithStatements(): Promise<TestServer> {
  return startPostgres({
    settings: [
      "shared_preload_libraries=pg_stat_statements",
      "pg_stat_statements.track=all",
      "pg_stat_statements.max=10000",
      "checkpoint_timeout=1h",
      "max_wal_size=8GB",
    ],
  });
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
    await delay(10);
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
  server: TestServer,
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
      work: () => inBatches(tasks, (ids) => boss!.insert(queue, ids.map((i) => ({ data: { i } })))),
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
      work: () =>
        inBatches(
          tasks,
          (ids) => utils!.addJobs(ids.map((i) => ({ identifier: "bench_noop", payload: { i } }))),
        ),
      close: async () => await utils!.release(),
    },
    process: {
      open: () => Promise.resolve(),
      work: async () => {
        const handled = new Counter();
        const all = handled.reached(tasks);
        runner = await runGraphile(
          graphileRunner(base, schema, { bench_noop: () => void handled.hit() }, preset),
        );
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
