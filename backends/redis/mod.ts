/**
 * The `redis:` engine: queue, results and events on a Redis server through `npm:redis`
 * (node-redis). Many worker processes on many machines may share one server: every change
 * of state is one Lua function call (atomic on the server), leases run on the server's clock
 * (`TIME`), and an idle worker is woken by pub/sub within milliseconds of an enqueue.
 *
 * Only this module imports the driver, so a program that never names a `redis://` URL
 * needs no `--allow-net`. A program that does needs `--allow-net=HOST:PORT`.
 *
 * ## URL
 * `redis://user:password@host:port/db?prefix=omniq:&events_max_len=100000&connect_timeout=5`
 * (`rediss://` for TLS). `db` defaults to 0, `prefix` (every key's start) to `omniq:`,
 * `events_max_len` (the events stream's approximate cap) to 100,000, `connect_timeout`
 * (seconds) to 5. The first connection must succeed within that time, or opening fails
 * with the host and the cause; later losses are retried with backoff. Passwords are never
 * part of an error message.
 *
 * ## Keys (under the prefix `P`, `omniq:` by default)
 * - `P task:<id>`: hash, one task: control fields (`state`, `queue`, `pri`, `seq`,
 *   `attempts`, `runAt`, `exp`, `max`, `rttl`, `key`, `odf`, `deps`, `links`, `token`,
 *   `lease`, `startedAt`, `completedAt`, `progress`, `error`, `v`), its name (`task`), and
 *   `d`, a JSON document of the rest (payload in base64, backoff, timeout, schedule id).
 * - `P{<queue>}:ready`: sorted set of queued ids, scored `(9 - priority) * 2^44 + seq`, so
 *   the lowest score is the highest priority, then the oldest.
 * - `P{<queue>}:due`: sorted set of scheduled ids by due time, promoted by the claim script.
 * - `P running`: sorted set of claimed ids by lease deadline (server clock).
 * - `P expiring`: unstarted ids by ttl deadline; `P ended`: final ids by end time.
 * - `P tasks`: every id by `seq` (listing, oldest first); `P seq`: the counter.
 * - `P keys`: hash, dedupe key → id of the live task holding it.
 * - `P deps:<id>`: sorted set of the tasks waiting on `<id>`.
 * - `P counts`: hash, `state:queue` → number of tasks (for `stats`).
 * - `P result:<id>`: string, a result as JSON; a result ttl is the key's expiry, and
 *   `P results:ttl` (ids by expiry) lets a sweep count the results it ends.
 * - `P events`: stream, one entry per event (field `e`, JSON), capped with
 *   `XADD MAXLEN ~ events_max_len`; the entry id is the event id.
 * - `P schedule:<id>`: hash (`d` definition JSON, `paused`, `next`, `last`);
 *   `P schedules`: set of ids; `P schedules:next`: unpaused ids by next tick.
 * - `P wake`: pub/sub channel; the scripts publish a queue's name when a task of it
 *   becomes due (or a delayed one is stored), and idle workers subscribed to it claim.
 *
 * ## Server code
 * On Redis 7 and later the engine's Lua code is loaded once as a function library named
 * `omniq_<hash of the code>`: it is kept with the data, and each OmniQ version has its own,
 * so processes of two versions can share a server. On an older server, or for an ACL user
 * who may not run `FUNCTION LOAD`, the same code runs as scripts (`EVALSHA`). Either is
 * loaded again when the server has lost it. Completions that a process's workers send in
 * one turn of its event loop travel in one call (each still fenced by its own token).
 *
 * ## Cluster caveat
 * A queue's own keys share a hash tag (`{queue}`), but a script touches the task hashes
 * and the shared sets of every queue it concerns, which a Redis Cluster refuses across
 * slots. On a cluster, give a prefix with its own hash tag (`prefix={omniq}:`): every key
 * then lands in one slot (one node does all the work). A single server or a primary with
 * replicas needs nothing.
 *
 * ## Durability
 * Redis keeps data in memory: run it with `appendonly yes` (and `appendfsync everysec` or
 * `always`), or a restart loses every queued task. While the server is away, workers keep
 * running and node-redis reconnects with backoff; a task whose completion could not be
 * written keeps its lease until it lapses, then runs again.
 *
 * @example Open a queue (needs a server)
 * ```ts ignore
 * import { OmniQ } from "@omniq/omniq";
 * await using q = await OmniQ.open("redis://127.0.0.1:6379/0?prefix=jobs:");
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { createClient } from "redis";
import {
  type Attachment,
  type Backend,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  type Failure,
  matchesEvent,
  type NewEvent,
  type NewTask,
  RECORD_VERSION,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
  type StoredTask,
  type SweepOptions,
  type TaskQueue,
  type TickClaim,
} from "../../src/backend.ts";
import { ConfigError, DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import {
  type EventType,
  type ListOptions,
  type QueueStats,
  type StateCounts,
  TASK_STATES,
  type TaskState,
} from "../../src/types.ts";
import {
  CLAIM_FIELDS,
  functionLibrary,
  SCRIPT_NAMES,
  type ScriptName,
  SCRIPTS,
} from "./lua/mod.ts";

/** Where the Redis engine connects, and how. */
export interface RedisOptions {
  /** A `redis://` or `rediss://` URL; the fields below override its parts. */
  url?: string;
  /**
   * The server's host name or address.
   * @default {"localhost"}
   */
  host?: string;
  /**
   * The server's port.
   * @default {6379}
   */
  port?: number;
  /**
   * The database index.
   * @default {0}
   */
  db?: number;
  /** The ACL user, if any. */
  username?: string;
  /** The password, if the server asks for one. */
  password?: string;
  /**
   * The start of every key this engine uses; a hash tag in it (`{omniq}:`) puts every key
   * in one cluster slot.
   * @default {"omniq:"}
   */
  prefix?: string;
  /**
   * The approximate most events the stream keeps (older ones are trimmed as new come).
   * @default {100000}
   */
  eventsMaxLen?: number;
  /**
   * How long the first connection may take, in seconds.
   * @default {5}
   */
  connectTimeout?: number;
  /**
   * TLS (on for `rediss://`).
   * @default {false}
   */
  tls?: boolean;
}

interface ResolvedOptions {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  prefix: string;
  eventsMaxLen: number;
  connectTimeout: number;
  tls: boolean;
}

/** Rows handled per sweep script call. */
const SWEEP_BATCH = 500;
/** Most completions sent in one call of the `complete` script. */
const COMPLETE_BATCH = 100;
/** How long (ms) the due time a claim brings stands in for a `nextDue` query. */
const DUE_HINT_MS = 100;
/** Stream entries read per `XRANGE` of an event query. */
const EVENT_PAGE = 1_000;
/**
 * How far before `since` an event query starts reading the stream: entry ids come from the
 * server's clock, event times from the writer's, so a little slack covers their skew.
 */
const SINCE_SLACK = 60_000;

type Client = ReturnType<typeof createClient>;
type Json = Record<string, unknown>;

function positive(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new ConfigError(
      `redis ${what}: expected a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Check and fill in the options; a URL's parts are overridden by the explicit fields. */
function resolveOptions(options: RedisOptions): ResolvedOptions {
  const fromUrl: RedisOptions = {};
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new ConfigError(`redis url: expected redis://[user:password@]host:port/db`);
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw new ConfigError(`redis url: expected a redis:// URL, got "${url.protocol}"`);
    }
    if (url.protocol === "rediss:") fromUrl.tls = true;
    if (url.hostname) fromUrl.host = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, "");
    if (url.port) fromUrl.port = Number(url.port);
    if (url.username) fromUrl.username = decodeURIComponent(url.username);
    if (url.password) fromUrl.password = decodeURIComponent(url.password);
    const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
    if (db !== "") {
      if (!/^\d+$/.test(db)) {
        throw new ConfigError(`redis url: expected a database index as the path, got "/${db}"`);
      }
      fromUrl.db = Number(db);
    }
    for (const [k, v] of url.searchParams) {
      switch (k) {
        case "prefix":
          fromUrl.prefix = v;
          break;
        case "events_max_len":
          fromUrl.eventsMaxLen = positive(v, k);
          break;
        case "connect_timeout":
          fromUrl.connectTimeout = positive(v, k);
          break;
        default:
          throw new ConfigError(
            `redis url: unknown parameter "${k}"; expected prefix, events_max_len or ` +
              `connect_timeout`,
          );
      }
    }
  }
  const o: RedisOptions = { ...fromUrl };
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined && k !== "url") (o as Record<string, unknown>)[k] = v;
  }
  const port = o.port ?? 6379;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`redis port: expected 1 to 65535, got ${JSON.stringify(port)}`);
  }
  const db = o.db ?? 0;
  if (!Number.isInteger(db) || db < 0) {
    throw new ConfigError(`redis db: expected an index from 0, got ${JSON.stringify(db)}`);
  }
  const prefix = o.prefix ?? "omniq:";
  if (typeof prefix !== "string" || prefix === "" || prefix.length > 200) {
    throw new ConfigError(
      `redis prefix: expected a non-empty string of at most 200 characters, got ${
        JSON.stringify(prefix)
      }`,
    );
  }
  const resolved: ResolvedOptions = {
    host: o.host ?? "localhost",
    port,
    db,
    prefix,
    eventsMaxLen: positive(o.eventsMaxLen ?? 100_000, "eventsMaxLen"),
    connectTimeout: positive(o.connectTimeout ?? 5, "connectTimeout"),
    tls: o.tls ?? false,
  };
  if (o.username !== undefined) resolved.username = o.username;
  if (o.password !== undefined) resolved.password = o.password;
  return resolved;
}

/** Where the engine connects, for messages: never the password. */
function describeTarget(o: ResolvedOptions): string {
  const user = o.username ? `${o.username}@` : "";
  return `redis ${user}${o.host}:${o.port}/${o.db} (prefix ${o.prefix})`;
}

function message(error: unknown): string {
  const e = error as { message?: unknown; cause?: unknown };
  const text = typeof e?.message === "string" ? e.message : String(error);
  const cause = (e?.cause as { message?: unknown })?.message;
  return typeof cause === "string" && cause !== text ? `${text} (${cause})` : text;
}

/** Whether an open failure is the configuration's (login, database), not the network's. */
function isConfigFailure(text: string): boolean {
  return /WRONGPASS|NOAUTH|NOPERM|AUTH|DB index|invalid password|ACL/i.test(text);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolve `promise` or give up after `ms` (the timer never outlives the race). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

function unb64(text: unknown, what: string): Uint8Array {
  if (typeof text !== "string") throw new Error(`${what}: expected base64 text`);
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** A JSON array from a script (cjson encodes an empty table as `{}`). */
function arr<T>(value: unknown): T[] {
  return Array.isArray(value) ? value as T[] : [];
}

/** `[k1, v1, k2, v2 …]` as an object. */
function pairs(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = arr<string>(flat);
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]] = list[i + 1];
  return out;
}

/** A claimed record from the values of `CLAIM_FIELDS` (an absent field comes as `false`). */
function record(values: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = arr<unknown>(values);
  for (let i = 0; i < CLAIM_FIELDS.length; i++) {
    const v = list[i];
    if (typeof v === "string") out[CLAIM_FIELDS[i]] = v;
  }
  return out;
}

function num(value: string | undefined, what: string): number {
  const n = Number(value);
  if (value === undefined || value === "" || !Number.isFinite(n)) {
    throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  }
  return n;
}

function optNum(value: string | undefined, what: string): number | undefined {
  return value === undefined || value === "" ? undefined : num(value, what);
}

/**
 * A task from its hash; throws an Error saying what is wrong when it is damaged. (A claim
 * returns only the fields in `CLAIM_FIELDS`: a field read here must be listed there too.)
 */
function toTask(id: string, h: Record<string, string>): StoredTask {
  const v = num(h.v, "v");
  if (v > RECORD_VERSION) {
    throw new OmniQError(
      `task ${id} was written by a newer OmniQ (record version ${v}; this version reads up ` +
        `to ${RECORD_VERSION}); upgrade OmniQ to read it`,
    );
  }
  if (!TASK_STATES.includes(h.state as TaskState)) throw new Error(`state: ${h.state}`);
  if (typeof h.task !== "string" || h.task === "") throw new Error("task: no name");
  const d = JSON.parse(h.d ?? "") as Json;
  if (!d || typeof d !== "object") throw new Error("d: expected a JSON object");
  const deps = h.deps === undefined || h.deps === "[]" ? [] : JSON.parse(h.deps);
  const task: StoredTask = {
    id,
    task: h.task,
    queue: h.queue,
    priority: num(h.pri, "pri"),
    payload: unb64(d.payload, "payload"),
    createdAt: Number(d.createdAt),
    runAt: num(h.runAt, "runAt"),
    maxAttempts: num(h.max, "max"),
    backoff: d.backoff as StoredTask["backoff"],
    dependsOn: arr<string>(deps),
    onDependencyFailure: h.odf === "run" ? "run" : "cancel",
    state: h.state as TaskState,
    attempts: num(h.attempts, "attempts"),
  };
  if (!task.backoff || typeof task.backoff !== "object") throw new Error("backoff: missing");
  const expiresAt = optNum(h.exp, "exp");
  if (expiresAt !== undefined) task.expiresAt = expiresAt;
  if (typeof d.timeout === "number") task.timeout = d.timeout;
  const resultTtl = optNum(h.rttl, "rttl");
  if (resultTtl !== undefined) task.resultTtl = resultTtl;
  if (h.key !== undefined) task.key = h.key;
  if (typeof d.scheduleId === "string") task.scheduleId = d.scheduleId;
  if (h.links !== undefined) {
    const links = JSON.parse(h.links) as { names?: unknown; pipe?: unknown };
    task.links = {};
    if (links.names && typeof links.names === "object" && !Array.isArray(links.names)) {
      task.links.names = links.names as Record<string, string>;
    } else if (Array.isArray(links.names)) task.links.names = {};
    if (typeof links.pipe === "string") task.links.pipe = links.pipe;
  }
  const startedAt = optNum(h.startedAt, "startedAt");
  if (startedAt !== undefined) task.startedAt = startedAt;
  const completedAt = optNum(h.completedAt, "completedAt");
  if (completedAt !== undefined) task.completedAt = completedAt;
  const progress = optNum(h.progress, "progress");
  if (progress !== undefined) task.progress = progress;
  if (h.error !== undefined) task.error = JSON.parse(h.error);
  return task;
}

/** The 13 script arguments of a new task (see `insert` in lua/fragments.ts). */
function taskArgs(t: NewTask): string[] {
  const d: Json = { payload: b64(t.payload), createdAt: t.createdAt, backoff: t.backoff };
  if (t.timeout !== undefined) d.timeout = t.timeout;
  if (t.scheduleId !== undefined) d.scheduleId = t.scheduleId;
  return [
    t.id,
    t.queue,
    String(t.priority),
    String(t.runAt),
    t.expiresAt === undefined ? "" : String(t.expiresAt),
    String(t.maxAttempts),
    t.resultTtl === undefined ? "" : String(t.resultTtl),
    t.key ?? "",
    t.onDependencyFailure,
    JSON.stringify(t.dependsOn),
    t.links === undefined ? "" : JSON.stringify(t.links),
    t.task,
    JSON.stringify(d),
  ];
}

function resultJson(r: StoredResult): string {
  const out: Json = { v: RECORD_VERSION, taskId: r.taskId, state: r.state };
  if (r.value !== undefined) out.value = b64(r.value);
  if (r.error !== undefined) out.error = r.error;
  out.completedAt = r.completedAt;
  if (r.expiresAt !== undefined) out.expiresAt = r.expiresAt;
  return JSON.stringify(out);
}

function toResult(raw: Json): StoredResult {
  if (typeof raw.v === "number" && raw.v > RECORD_VERSION) {
    throw new OmniQError(
      `the result of task ${raw.taskId} was written by a newer OmniQ (record version ` +
        `${raw.v}); upgrade OmniQ to read it`,
    );
  }
  const r: StoredResult = {
    taskId: String(raw.taskId),
    state: raw.state as StoredResult["state"],
    completedAt: Number(raw.completedAt),
  };
  if (typeof raw.value === "string") r.value = unb64(raw.value, "value");
  if (raw.error && typeof raw.error === "object") r.error = raw.error as StoredResult["error"];
  if (typeof raw.expiresAt === "number") r.expiresAt = raw.expiresAt;
  return r;
}

function toEvent(raw: Json, id?: string): NewEvent | StoredEvent {
  const e: NewEvent = { type: raw.type as EventType, at: Number(raw.at) };
  if (typeof raw.taskId === "string") e.taskId = raw.taskId;
  if (typeof raw.queue === "string") e.queue = raw.queue;
  if (typeof raw.attempt === "number") e.attempt = raw.attempt;
  if (raw.data && typeof raw.data === "object" && !Array.isArray(raw.data)) {
    e.data = raw.data as Record<string, unknown>;
  }
  const eventId = id ?? (typeof raw.id === "string" ? raw.id : undefined);
  return eventId === undefined ? e : { ...e, id: eventId };
}

function eventJson(e: NewEvent): string {
  const out: Json = { type: e.type };
  if (e.taskId !== undefined) out.taskId = e.taskId;
  if (e.queue !== undefined) out.queue = e.queue;
  out.at = e.at;
  if (e.attempt !== undefined) out.attempt = e.attempt;
  if (e.data !== undefined) out.data = e.data;
  return JSON.stringify(out);
}

function scheduleJson(s: StoredSchedule): string {
  const { paused: _p, nextRunAt: _n, lastRunAt: _l, payload, ...rest } = s;
  return JSON.stringify({ ...rest, payload: b64(payload) });
}

function toSchedule(h: Record<string, string>): StoredSchedule {
  const d = JSON.parse(h.d) as Json;
  const s = { ...d, payload: unb64(d.payload, "payload"), paused: h.paused === "1" } as
    & StoredSchedule
    & Json;
  if (h.next !== undefined) s.nextRunAt = Number(h.next);
  if (h.last !== undefined) s.lastRunAt = Number(h.last);
  return s;
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

/**
 * The function library's name: `omniq_` and a hash of the code, so that processes of one
 * version share it and other versions (other code) load theirs beside it.
 */
async function libraryName(): Promise<string> {
  const code = new TextEncoder().encode(SCRIPT_NAMES.map((n) => SCRIPTS[n]).join("\n"));
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", code));
  const hex = Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0"));
  return `omniq_${hex.join("")}`;
}

/** A subscriber of wake-ups: the queues it takes from. */
interface Subscriber {
  queues: Set<string>;
  onWake: () => void;
}

/** What a task-changing script returned. */
interface Outcome {
  events: unknown;
  results: unknown;
  x: unknown;
}

/**
 * The outcome of a task-changing script: `[x, results, event, event id, …]` as `finish` in
 * lua/mod.ts returns it, or one JSON document (a refusal before any change).
 */
function outcome(reply: unknown): Outcome {
  if (!Array.isArray(reply)) return JSON.parse(String(reply)) as Outcome;
  const events: Json[] = [];
  for (let i = 2; i + 1 < reply.length; i += 2) {
    const e = JSON.parse(String(reply[i])) as Json;
    if (reply[i + 1] !== "") e.id = String(reply[i + 1]);
    events.push(e);
  }
  return { x: JSON.parse(String(reply[0])), results: JSON.parse(String(reply[1])), events };
}

/** The client, the scripts and the wake-up subscriber, shared by the three stores. */
class Connection {
  readonly client: Client;
  readonly options: ResolvedOptions;
  attached: Attachment = { results: true, events: true };
  /** Set once the first connection succeeded: from then on, losses are retried. */
  opened = false;
  #closed = false;
  /** The function library's name (used while `#shas` is empty). */
  #library = "";
  /** The scripts' SHAs, on a server without functions. */
  #shas = new Map<ScriptName, string>();
  #subscribers = new Set<Subscriber>();
  #subscriber: Client | undefined;
  #listening: Promise<void> | undefined;

  constructor(options: ResolvedOptions) {
    this.options = options;
    const socket: Record<string, unknown> = {
      host: options.host,
      port: options.port,
      connectTimeout: options.connectTimeout * 1000,
      // Fail the first connection at once (a wrong host or password is not worth retrying);
      // after that, retry a lost connection with capped, jittered backoff.
      reconnectStrategy: (retries: number, cause: Error) => {
        if (!this.opened || this.#closed) return cause;
        return Math.min(50 * 2 ** retries, 2_000) + Math.floor(Math.random() * 50);
      },
    };
    if (options.tls) socket.tls = true;
    const config: Record<string, unknown> = { socket, database: options.db };
    if (options.username !== undefined) config.username = options.username;
    if (options.password !== undefined) config.password = options.password;
    this.client = createClient(config) as Client;
    // node-redis emits connection losses as "error" events; the commands report them too.
    this.client.on("error", () => {});
  }

  get closed(): boolean {
    return this.#closed;
  }

  get prefix(): string {
    return this.options.prefix;
  }

  check(): void {
    if (this.#closed) {
      throw new OmniQError(`the ${describeTarget(this.options)} backend is closed`);
    }
  }

  /** Wrap a driver error with where it happened (never the password). */
  wrap(error: unknown, what: string): Error {
    if (error instanceof OmniQError) return error;
    return new OmniQError(`${describeTarget(this.options)}: ${what} failed: ${message(error)}`, {
      cause: error,
    });
  }

  async open(): Promise<void> {
    await this.client.connect();
    this.opened = true;
    this.#library = await libraryName();
    if (!(await this.#loadLibrary())) {
      await Promise.all(SCRIPT_NAMES.map((name) => this.#load(name)));
    }
  }

  /**
   * Load the function library (Redis 7+), unless a process loaded it before; `false` when
   * the server has no functions (or the ACL user may not load them), so the engine runs
   * its scripts with `EVALSHA` instead.
   */
  async #loadLibrary(): Promise<boolean> {
    try {
      await this.client.sendCommand(["FUNCTION", "LOAD", functionLibrary(this.#library)]);
    } catch (error) {
      const text = message(error);
      if (/already exists/i.test(text)) return true;
      if (/unknown command|unknown subcommand|NOPERM/i.test(text)) return false;
      throw error;
    }
    return true;
  }

  async #load(name: ScriptName): Promise<string> {
    const sha = String(await this.client.sendCommand(["SCRIPT", "LOAD", SCRIPTS[name]]));
    this.#shas.set(name, sha);
    return sha;
  }

  /** One raw command. */
  async command(what: string, args: string[]): Promise<unknown> {
    this.check();
    try {
      return await this.client.sendCommand(args);
    } catch (error) {
      throw this.wrap(error, what);
    }
  }

  /**
   * Run an operation: a function of the library, or a script by its SHA on a server without
   * functions. Either is loaded again when the server lost it (a restart without
   * persistence, a `FUNCTION FLUSH` or `SCRIPT FLUSH`).
   */
  async script(name: ScriptName, args: (string | number)[]): Promise<unknown> {
    this.check();
    const flags = `${this.attached.results ? 1 : 0}${this.attached.events ? 1 : 0}`;
    const argv = [this.prefix, flags, String(this.options.eventsMaxLen), ...args.map(String)];
    try {
      if (this.#shas.size === 0) {
        const call = ["FCALL", `${this.#library}_${name}`, "0", ...argv];
        try {
          return await this.client.sendCommand(call);
        } catch (error) {
          if (!/Function not found/i.test(message(error))) throw error;
          await this.#loadLibrary();
          return await this.client.sendCommand(call);
        }
      }
      let sha = this.#shas.get(name)!;
      try {
        return await this.client.sendCommand(["EVALSHA", sha, "0", ...argv]);
      } catch (error) {
        if (!message(error).startsWith("NOSCRIPT")) throw error;
        sha = await this.#load(name);
        return await this.client.sendCommand(["EVALSHA", sha, "0", ...argv]);
      }
    } catch (error) {
      throw this.wrap(error, name);
    }
  }

  /** Run a task-changing script and parse its outcome. */
  async change(name: ScriptName, args: (string | number)[]): Promise<Outcome> {
    return outcome(await this.script(name, args));
  }

  effects(out: Outcome, extra?: Effects): Effects {
    const events = arr<Json>(out.events).map((e) => toEvent(e));
    const results = arr<Json>(out.results).map(toResult);
    if (extra) {
      events.push(...extra.events);
      results.push(...extra.results);
    }
    return { events, results };
  }

  subscribe(queues: string[], onWake: () => void): () => void {
    const subscriber: Subscriber = { queues: new Set(queues), onWake };
    this.#subscribers.add(subscriber);
    this.#listening ??= this.#listen();
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  /** Subscribe to the wake channel on a connection of its own (subscribers can do no else). */
  async #listen(): Promise<void> {
    for (let pause = 100; !this.#closed; pause = Math.min(pause * 2, 5_000)) {
      const sub = this.client.duplicate() as Client;
      sub.on("error", () => {});
      // On every (re)connection: what was published meanwhile went unseen.
      sub.on("ready", () => {
        for (const s of this.#subscribers) s.onWake();
      });
      this.#subscriber = sub;
      try {
        await sub.connect();
        if (this.#closed) break;
        await sub.subscribe(`${this.prefix}wake`, (queue: string) => {
          for (const s of this.#subscribers) if (s.queues.has(queue)) s.onWake();
        });
        return;
      } catch {
        // Workers poll at their interval meanwhile; try again later.
        this.#subscriber = undefined;
        try {
          sub.destroy();
        } catch {
          // It never connected.
        }
        await sleep(pause);
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscribers.clear();
    // The subscriber has nothing to flush, and may be retrying a server that is gone.
    try {
      this.#subscriber?.destroy();
    } catch {
      // It was not open.
    }
    await within(this.#listening ?? Promise.resolve(), 2_000);
    // A graceful close waits for replies; a server that is gone gets a hard one.
    const closed = await within(this.client.close().then(() => true, () => false), 2_000);
    if (!closed) {
      try {
        this.client.destroy();
      } catch {
        // Already closed.
      }
    }
  }
}

/** A completion waiting for the next call of the `complete` script. */
interface PendingCompletion {
  /** Its five script arguments. */
  args: string[];
  resolve: (effects: Effects | undefined) => void;
  reject: (error: unknown) => void;
}

/** The task queue of a Redis engine. */
class RedisQueue implements TaskQueue {
  /** 64 MiB: a batch of tasks travels as one script call, which Redis caps at 512 MiB. */
  readonly maxPayloadBytes = 64 * 1024 * 1024;
  readonly #c: Connection;
  #completions: PendingCompletion[] = [];
  /** The earliest due time the latest claim that drained its queues brought. */
  #dueHint: { queues: string; due: number | undefined; at: number } | undefined;

  constructor(c: Connection) {
    this.#c = c;
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { ...attachment };
  }

  subscribe(queues: string[], onWake: () => void): () => void {
    return this.#c.subscribe(queues, onWake);
  }

  async enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    if (tasks.length === 0) return { ids: [], created: [], effects: { events: [], results: [] } };
    const args: string[] = [String(tasks.length)];
    for (const t of tasks) args.push(...taskArgs(t));
    const out = await this.#c.change("enqueue", args);
    const x = out.x as { err?: string; id?: string; ids?: string[]; created?: boolean[] };
    if (x.err === "dependency") throw new OmniQError(`dependsOn: no task with id "${x.id}"`);
    if (x.err === "duplicate") throw new DuplicateTaskError(`id: a task with id "${x.id}" exists`);
    return { ids: arr(x.ids), created: arr(x.created), effects: this.#c.effects(out) };
  }

  async get(id: string): Promise<StoredTask | undefined> {
    const key = `${this.#c.prefix}task:${id}`;
    const h = pairs(await this.#c.command("get", ["HGETALL", key]));
    if (Object.keys(h).length === 0) return undefined;
    try {
      return toTask(id, h);
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      throw new OmniQError(
        `${describeTarget(this.#c.options)}: the task record ${key} is damaged: ${message(error)}`,
      );
    }
  }

  async list(filter: ListOptions): Promise<StoredTask[]> {
    const states = filter.state === undefined
      ? ""
      : (Array.isArray(filter.state) ? filter.state : [filter.state]).join(",");
    const rows = arr<unknown>(
      await this.#c.script("list", [
        filter.queue ?? "",
        filter.task ?? "",
        states,
        String(filter.offset ?? 0),
        String(filter.limit ?? 100),
      ]),
    );
    const out: StoredTask[] = [];
    for (const row of rows) {
      const h = pairs(row);
      try {
        out.push(toTask(h.id, h));
      } catch {
        // A damaged record is left out of listings; `get` names what is wrong with it.
      }
    }
    return out;
  }

  async stats(): Promise<QueueStats> {
    const h = pairs(await this.#c.command("stats", ["HGETALL", `${this.#c.prefix}counts`]));
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const [field, value] of Object.entries(h)) {
      const colon = field.indexOf(":");
      const state = field.slice(0, colon) as TaskState;
      const n = Number(value);
      if (colon < 0 || !TASK_STATES.includes(state) || !(n > 0)) continue;
      total[state] += n;
      (queues[field.slice(colon + 1)] ??= zeroCounts())[state] += n;
    }
    return { total, queues };
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const out = await this.#c.change("claim", [
      String(request.limit),
      String(request.lease),
      request.worker,
      crypto.randomUUID(),
      ...request.queues,
    ]);
    const x = out.x as { tasks: unknown; drained?: boolean; due?: string };
    // A worker that got fewer tasks than it asked for asks next when one is due.
    this.#dueHint = x.drained === true
      ? {
        queues: JSON.stringify(request.queues),
        due: x.due === undefined ? undefined : Number(x.due),
        at: Date.now(),
      }
      : undefined;
    const tasks: ClaimedTask[] = [];
    const extra: Effects = { events: [], results: [] };
    for (const entry of arr<[string, unknown]>(x.tasks)) {
      const [id, values] = entry;
      const h = record(values);
      try {
        const task = toTask(id, h);
        tasks.push({ ...task, token: h.token, leaseUntil: num(h.lease, "lease") });
      } catch (error) {
        // A damaged record fails alone, with the reason in its events; the rest run.
        const failed = await this.#c.change("corrupt", [
          id,
          h.token ?? "",
          h.queue ?? "",
          message(error),
        ]);
        const fx = this.#c.effects(failed);
        extra.events.push(...fx.events);
        extra.results.push(...fx.results);
      }
    }
    return { tasks, effects: this.#c.effects(out, extra) };
  }

  async renew(id: string, token: string, lease: number): Promise<boolean> {
    return Number(await this.#c.script("renew", [id, token, String(lease)])) === 1;
  }

  async progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    const out = await this.#c.change("progress", [id, token, String(value)]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return new Promise((resolve, reject) => {
      this.#completions.push({
        args: [
          id,
          token,
          resultJson(result),
          result.expiresAt === undefined ? "" : String(result.expiresAt),
          String(result.completedAt),
        ],
        resolve,
        reject,
      });
      // The completions of one turn of the event loop (a worker's tasks often end together)
      // go in one script call: one round of parsing, counting and replying for them all.
      if (this.#completions.length === 1) setImmediate(() => this.#flushCompletions());
    });
  }

  #flushCompletions(): void {
    const pending = this.#completions;
    this.#completions = [];
    for (let i = 0; i < pending.length; i += COMPLETE_BATCH) {
      void this.#completeBatch(pending.slice(i, i + COMPLETE_BATCH));
    }
  }

  async #completeBatch(batch: PendingCompletion[]): Promise<void> {
    let out: Outcome;
    try {
      out = await this.#c.change("complete", [
        String(batch.length),
        ...batch.flatMap((p) => p.args),
      ]);
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    // Each completion's own effects: the script counts the events and results up to it.
    try {
      const events = arr<Json>(out.events);
      const results = arr<Json>(out.results);
      const rows = arr<[unknown, number, number]>(out.x);
      let e = 0;
      let r = 0;
      batch.forEach((p, i) => {
        const [done, eEnd, rEnd] = rows[i] ?? ["no outcome", e, r];
        if (done === true) {
          p.resolve({
            events: events.slice(e, eEnd).map((x) => toEvent(x)),
            results: results.slice(r, rEnd).map(toResult),
          });
        } else if (done === false) {
          p.resolve(undefined);
        } else {
          p.reject(this.#c.wrap(new Error(String(done)), "complete"));
        }
        e = eEnd;
        r = rEnd;
      });
    } catch (error) {
      // An outcome this engine cannot read: no completion waits forever (settled ones stay).
      for (const p of batch) p.reject(this.#c.wrap(error, "complete"));
    }
  }

  async fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    const r = failure.result;
    const out = await this.#c.change("fail", [
      id,
      token,
      JSON.stringify(failure.error),
      failure.retryAt === undefined ? "" : String(failure.retryAt),
      r === undefined ? "" : resultJson(r),
      r?.expiresAt === undefined ? "" : String(r.expiresAt),
      r === undefined ? "" : String(r.completedAt),
    ]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async cancel(id: string, reason: string): Promise<Effects | undefined> {
    const out = await this.#c.change("cancel", [id, reason]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async retry(id: string): Promise<Effects | undefined> {
    const out = await this.#c.change("retry", [id]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const effects: Effects = { events: [], results: [] };
    // Bounded batches keep each script short, so other clients are never held up long.
    for (let round = 0; round < 100; round++) {
      const out = await this.#c.change("sweep", [
        options.purgeBefore === undefined ? "" : String(options.purgeBefore),
        String(SWEEP_BATCH),
      ]);
      const fx = this.#c.effects(out);
      effects.events.push(...fx.events);
      effects.results.push(...fx.results);
      if (out.x !== true) break;
    }
    return effects;
  }

  async nextDue(queues: string[]): Promise<number | undefined> {
    if (queues.length === 0) return undefined;
    // The answer the claim just before brought, if it is fresh: a task scheduled since then
    // wakes the worker through pub/sub anyway, and it asks again.
    const hint = this.#dueHint;
    this.#dueHint = undefined;
    if (
      hint !== undefined && hint.queues === JSON.stringify(queues) &&
      Date.now() - hint.at <= DUE_HINT_MS
    ) {
      return hint.due;
    }
    const out = await this.#c.script("nextDue", queues);
    return out === null || out === undefined ? undefined : Number(out);
  }

  async putSchedule(s: StoredSchedule): Promise<void> {
    await this.#c.script("putSchedule", [
      s.id,
      scheduleJson(s),
      s.paused ? "1" : "0",
      s.nextRunAt === undefined ? "" : String(s.nextRunAt),
      s.lastRunAt === undefined ? "" : String(s.lastRunAt),
    ]);
  }

  async getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const h = pairs(
      await this.#c.command("getSchedule", ["HGETALL", `${this.#c.prefix}schedule:${id}`]),
    );
    return h.d === undefined ? undefined : toSchedule(h);
  }

  async #schedules(ids: string[]): Promise<StoredSchedule[]> {
    const rows = await Promise.all(
      ids.map((id) =>
        this.#c.command("listSchedules", ["HGETALL", `${this.#c.prefix}schedule:${id}`])
      ),
    );
    return rows.map(pairs).filter((h) => h.d !== undefined).map(toSchedule);
  }

  async listSchedules(): Promise<StoredSchedule[]> {
    const ids = arr<string>(
      await this.#c.command("listSchedules", ["SMEMBERS", `${this.#c.prefix}schedules`]),
    ).sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
    return await this.#schedules(ids);
  }

  async setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    const out = await this.#c.change("pauseSchedule", [
      id,
      paused ? "1" : "0",
      nextRunAt === undefined ? "" : String(nextRunAt),
    ]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async deleteSchedule(id: string): Promise<boolean> {
    return Number(await this.#c.script("deleteSchedule", [id])) === 1;
  }

  async dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const ids = arr<string>(
      await this.#c.command("dueSchedules", [
        "ZRANGEBYSCORE",
        `${this.#c.prefix}schedules:next`,
        "-inf",
        String(now),
        "LIMIT",
        "0",
        String(limit),
      ]),
    );
    return (await this.#schedules(ids)).filter((s) =>
      !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now
    );
  }

  async nextScheduleAt(): Promise<number | undefined> {
    const top = arr<string>(
      await this.#c.command("nextScheduleAt", [
        "ZRANGE",
        `${this.#c.prefix}schedules:next`,
        "0",
        "0",
        "WITHSCORES",
      ]),
    );
    return top.length === 2 ? Number(top[1]) : undefined;
  }

  async fireTick(claim: TickClaim): Promise<Effects | undefined> {
    const args = [
      claim.scheduleId,
      String(claim.tick),
      claim.next === undefined ? "" : String(claim.next),
      claim.task ? "1" : "0",
    ];
    if (claim.task) args.push(...taskArgs(claim.task));
    const out = await this.#c.change("fireTick", args);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The result store of a Redis engine: one key per result, its ttl the key's expiry. */
class RedisResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  async put(results: StoredResult[]): Promise<void> {
    if (results.length === 0) return;
    const args: string[] = [];
    for (const r of results) {
      args.push(r.taskId, resultJson(r), r.expiresAt === undefined ? "" : String(r.expiresAt));
    }
    await this.#c.script("putResults", args);
  }

  async get(taskId: string): Promise<StoredResult | undefined> {
    const raw = await this.#c.command("results.get", ["GET", `${this.#c.prefix}result:${taskId}`]);
    if (raw === null || raw === undefined) return undefined;
    let r: StoredResult;
    try {
      r = toResult(JSON.parse(String(raw)));
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      throw new OmniQError(
        `${describeTarget(this.#c.options)}: the result of task ${taskId} is damaged: ${
          message(error)
        }`,
      );
    }
    return r.expiresAt === undefined || r.expiresAt > Date.now() ? r : undefined;
  }

  async delete(taskIds: string[]): Promise<void> {
    if (taskIds.length === 0) return;
    await this.#c.script("deleteResults", taskIds);
  }

  async sweep(now: number): Promise<number> {
    let total = 0;
    for (let round = 0; round < 100; round++) {
      const n = Number(await this.#c.script("sweepResults", [String(now), String(SWEEP_BATCH)]));
      total += n;
      if (n < SWEEP_BATCH) break;
    }
    return total;
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The event store of a Redis engine: a capped stream. */
class RedisEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  async append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const ids = arr<string>(await this.#c.script("appendEvents", events.map(eventJson)));
    return events.map((e, i) => ({ ...e, id: ids[i] }));
  }

  async query(query: EventQuery): Promise<StoredEvent[]> {
    const limit = query.limit ?? Infinity;
    const key = `${this.#c.prefix}events`;
    let start = query.after !== undefined
      ? `(${query.after}`
      : query.since !== undefined
      ? String(Math.max(0, Math.floor(query.since) - SINCE_SLACK))
      : "-";
    const out: StoredEvent[] = [];
    for (;;) {
      const page = arr<[string, string[]]>(
        await this.#c.command("events.query", [
          "XRANGE",
          key,
          start,
          "+",
          "COUNT",
          String(EVENT_PAGE),
        ]),
      );
      for (const [id, fields] of page) {
        const f = pairs(fields);
        let raw: Json;
        try {
          raw = JSON.parse(f.e);
        } catch {
          continue; // an entry of another program: not an event of ours
        }
        const e = toEvent(raw, id) as StoredEvent;
        if (!matchesEvent(e, query)) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      if (page.length < EVENT_PAGE) return out;
      start = `(${page[page.length - 1][0]}`;
    }
  }

  async sweep(before: number): Promise<number> {
    return Number(await this.#c.script("trimEvents", [String(before)]));
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/**
 * The Redis engine: the task queue, results and events under one key prefix. Open it with
 * {@linkcode openRedis} or a `redis://` URL in `OmniQ.open`.
 *
 * Closing any of its three stores closes the whole engine, since they share one client.
 *
 * @example Open with options (needs a server)
 * ```ts ignore
 * import { RedisBackend } from "@omniq/omniq/redis";
 * await using backend = await RedisBackend.open({
 *   host: "127.0.0.1", port: 6379, db: 0, password: "secret", prefix: "jobs:",
 * });
 * console.assert((await backend.queue.stats()).total.queued >= 0);
 * ```
 */
export class RedisBackend implements Backend, AsyncDisposable {
  /** The engine's name. */
  readonly name = "redis";
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** The event store. */
  readonly events: EventStore;
  /** The start of every key this engine uses. */
  readonly prefix: string;
  readonly #c: Connection;

  private constructor(c: Connection) {
    this.#c = c;
    this.prefix = c.prefix;
    this.queue = new RedisQueue(c);
    this.results = new RedisResults(c);
    this.events = new RedisEvents(c);
  }

  /**
   * Connect and load the scripts.
   *
   * @param options Where to connect (a URL and/or host, port, db, username, password), the
   *   key prefix and the events stream's cap.
   * @returns The open engine.
   * @throws {ConfigError} When an option is not valid, or the server refuses the login or
   *   the database index (the message names the host and the cause).
   * @throws {OmniQError} When the server cannot be reached within `connectTimeout`.
   *
   * @example Open (needs a server)
   * ```ts ignore
   * import { RedisBackend } from "@omniq/omniq/redis";
   * const backend = await RedisBackend.open({ url: "redis://localhost:6379/0" });
   * await backend.close();
   * ```
   */
  static async open(options: RedisOptions): Promise<RedisBackend> {
    const o = resolveOptions(options);
    const c = new Connection(o);
    try {
      await c.open();
    } catch (error) {
      await c.close().catch(() => {});
      const text = message(error);
      const what = /ECONNREFUSED/.test(text)
        ? `connection refused: is the server running and listening there? (${text})`
        : text;
      const msg = `${describeTarget(o)}: cannot open: ${what}`;
      throw isConfigFailure(text)
        ? new ConfigError(msg, { cause: error })
        : new OmniQError(msg, { cause: error });
    }
    return new RedisBackend(c);
  }

  /**
   * Close the client and the wake-up subscriber. Closing twice is harmless.
   *
   * @returns When both connections are closed.
   */
  close(): Promise<void> {
    return this.#c.close();
  }

  /** Close at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Open a Redis engine.
 *
 * @param target A `redis://` or `rediss://` URL, or the options.
 * @returns The open engine.
 * @throws {ConfigError} For a bad option, a refused login or a bad database index.
 * @throws {OmniQError} When the server cannot be reached.
 *
 * @example Open by URL (needs a server)
 * ```ts ignore
 * import { openRedis } from "@omniq/omniq/redis";
 * const backend = await openRedis("redis://:secret@localhost:6379/0?prefix=jobs:");
 * await backend.close();
 * ```
 */
export function openRedis(target: string | RedisOptions): Promise<RedisBackend> {
  return RedisBackend.open(typeof target === "string" ? { url: target } : target);
}
