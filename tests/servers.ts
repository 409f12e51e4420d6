/**
 * Real PostgreSQL, Redis and NATS JetStream servers for the test suite, each started on
 * 127.0.0.1 on a free port with its data in a fresh temp directory. `tests/run.ts` starts
 * them once per run and hands their URLs to `deno test` through the environment; test files
 * read them back with {@linkcode testServerUrl}.
 *
 * A server binary that is missing is installed from Debian's package when running as root
 * (see {@linkcode ensurePackage}). Every server is a direct child of the process that started
 * it and, on Linux, is started through `setpriv --pdeathsig`, so the kernel stops it if that
 * process dies without calling `stop()`.
 *
 * @example Start a server for the length of a block
 * ```ts ignore
 * import { startRedis } from "./servers.ts";
 *
 * await using redis = await startRedis();
 * console.log(redis.url); // redis://127.0.0.1:41234
 * ```
 *
 * @module
 */

/** The environment variables through which `tests/run.ts` hands the servers to the tests. */
export const TEST_ENV = {
  postgres: "OMNIQ_TEST_POSTGRES_URL",
  redis: "OMNIQ_TEST_REDIS_URL",
  nats: "OMNIQ_TEST_NATS_URL",
  /** A URL that restarts the Redis server when POSTed to (see {@linkcode restartRedisFromEnv}). */
  redisControl: "OMNIQ_TEST_REDIS_CONTROL",
} as const;

/** A server started by this module. */
export interface TestServer extends AsyncDisposable {
  /** The URL clients connect to, e.g. `redis://127.0.0.1:41234`. */
  readonly url: string;
  /** The TCP port it listens on, on 127.0.0.1. */
  readonly port: number;
  /** Its temp directory: data, log (`server.log`) and sockets. Removed by `stop()`. */
  readonly dir: string;
  /** Stop the server (a signal, then wait for it to exit) and remove its directory. */
  stop(): Promise<void>;
}

/** A Redis server; it can also be restarted on the same port and data. */
export interface RedisServer extends TestServer {
  /**
   * Stop the server with SIGTERM, wait for it to exit, then start it again on the same port
   * and directory, so its append-only file is replayed. Resolves once it answers PING.
   */
  restart(): Promise<void>;
}

/** Options shared by the `start*` functions. */
export interface StartOptions {
  /**
   * How long to wait for the server to accept connections, in milliseconds.
   * @default {30000}
   */
  readyTimeoutMs?: number;
}

/** Options of {@linkcode startPostgres}. */
export interface PostgresStartOptions extends StartOptions {
  /**
   * More server settings, each `name=value`, passed as `-c` after the defaults (a later one
   * wins), e.g. `shared_preload_libraries=pg_stat_statements` for `bench/server_cost.ts`.
   */
  settings?: string[];
}

const HOST = "127.0.0.1";
const DEFAULT_READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const SBIN_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];

/**
 * A free TCP port on 127.0.0.1: bind port 0, read the port the system chose, close it.
 *
 * @returns the port number
 *
 * @example Pick a port
 * ```ts ignore
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}

/**
 * The path of an executable named `name` on `PATH` or in the sbin directories (Debian puts
 * `nats-server` in `/usr/sbin`, which a non-root `PATH` often lacks).
 *
 * @param name the executable's file name
 * @returns its path, or `undefined` when there is none
 *
 * @example Find redis-server
 * ```ts ignore
 * const path = await findBinary("redis-server"); // "/usr/bin/redis-server"
 * ```
 */
export async function findBinary(name: string): Promise<string | undefined> {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":").filter(Boolean), ...SBIN_DIRS];
  for (const dir of dirs) {
    if (await isExecutable(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

/**
 * Find what a server needs, installing its Debian package first when it is missing. As root
 * it runs `apt-get install -y <package>` (and `apt-get update` then again if that fails);
 * otherwise it throws an error naming the package to install. Installs run one at a time,
 * since apt holds a lock.
 *
 * @param find an executable name to look up with {@linkcode findBinary}, or a function that
 *   returns what was found (a path) or `undefined`
 * @param debianPackage the Debian package that provides it
 * @returns what `find` found, after installing if needed
 *
 * @example Make sure nats-server is there
 * ```ts ignore
 * const natsServer = await ensurePackage("nats-server", "nats-server");
 * ```
 */
export async function ensurePackage(
  find: string | (() => Promise<string | undefined>),
  debianPackage: string,
): Promise<string> {
  const lookup = typeof find === "string" ? () => findBinary(find) : find;
  const what = typeof find === "string" ? find : debianPackage;
  const found = await lookup();
  if (found) return found;
  if (Deno.uid() !== 0) {
    throw new Error(
      `${what} is not installed: install the Debian package "${debianPackage}" ` +
        `(sudo apt-get install -y ${debianPackage}), or run the tests as root to install it ` +
        `automatically, or set ${Object.values(TEST_ENV).slice(0, 3).join(", ")} to servers ` +
        `of your own`,
    );
  }
  await aptInstall(debianPackage);
  const installed = await lookup();
  if (!installed) {
    throw new Error(`${what}: still missing after "apt-get install -y ${debianPackage}"`);
  }
  return installed;
}

let aptQueue: Promise<unknown> = Promise.resolve();

function aptInstall(debianPackage: string): Promise<void> {
  const run = async () => {
    const apt = await findBinary("apt-get");
    if (!apt) {
      throw new Error(`${debianPackage} is not installed and there is no apt-get to install it`);
    }
    console.error(`tests/servers.ts: installing ${debianPackage} with apt-get`);
    const install = ["install", "-y", "--no-install-recommends", debianPackage];
    let result = await runCommand(apt, install);
    if (!result.ok) {
      // A fresh image often has no package lists yet.
      await runCommand(apt, ["update"]);
      result = await runCommand(apt, install);
    }
    if (!result.ok) {
      throw new Error(
        `apt-get install -y ${debianPackage} failed (exit ${result.code}):\n${
          tail(result.output, 20)
        }`,
      );
    }
  };
  const next = aptQueue.then(run, run);
  aptQueue = next.catch(() => {});
  return next;
}

/**
 * Start PostgreSQL: `initdb` a fresh cluster with a superuser `omniq` (password `omniq`,
 * scram-sha-256 over TCP, trust on the Unix socket), create the database `omniq`, and run
 * `postgres` listening on 127.0.0.1 only. As root, initdb and the server run as the
 * `postgres` user, since initdb refuses to run as root.
 *
 * @param options how long to wait for readiness, and more server settings
 * @returns the running server; its URL is `postgres://omniq:omniq@127.0.0.1:PORT/omniq`
 *
 * @example Start PostgreSQL
 * ```ts ignore
 * await using pg = await startPostgres();
 * console.log(pg.url);
 * ```
 */
export async function startPostgres(options: PostgresStartOptions = {}): Promise<TestServer> {
  const bindir = await ensurePackage(findPostgresBindir, "postgresql");
  const dir = await Deno.makeTempDir({ prefix: "omniq-pg-" });
  const log = `${dir}/server.log`;
  const asUser = Deno.uid() === 0 ? "postgres" : undefined;
  try {
    const pwfile = `${dir}/pwfile`;
    await Deno.writeTextFile(pwfile, "omniq\n");
    if (asUser) {
      const { uid, gid } = await lookupUser(asUser);
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
  const pgIsReady = (await isExecutable(`${bindir}/pg_isready`))
    ? `${bindir}/pg_isready`
    : await findBinary("pg_isready");
  const server = await launch({
    name: "postgres",
    command: `${bindir}/postgres`,
    args: [
      "-D",
      `${dir}/data`,
      "-c",
      `listen_addresses=${HOST}`,
      "-p",
      String(port),
      "-k",
      dir,
      // The conformance suite opens pools from many workers at once.
      "-c",
      "max_connections=300",
      // Throwaway data: skip fsync. Commits still reach the kernel, so a killed server keeps them.
      "-c",
      "fsync=off",
      ...(options.settings ?? []).flatMap((setting) => ["-c", setting]),
    ],
    // SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to leave;
    // SIGINT is its "fast" shutdown, which is what a test run wants.
    stopSignal: "SIGINT",
    asUser,
    port,
    dir,
    log,
    readyTimeoutMs: options.readyTimeoutMs,
    probe: async () => {
      if (!pgIsReady) return true;
      const ready = await runCommand(pgIsReady, ["-h", HOST, "-p", String(port), "-q"]);
      return ready.ok;
    },
  });
  try {
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
      throw new Error(`createdb failed (exit ${createdb.code}):\n${createdb.output}`);
    }
  } catch (error) {
    await server.stop();
    throw error;
  }
  return handle(`postgres://omniq:omniq@${HOST}:${port}/omniq`, dir, server);
}

/**
 * Start Redis with its append-only file on (`--appendonly yes --appendfsync everysec`) and no
 * RDB snapshots, so {@linkcode RedisServer.restart} keeps the data, as production needs.
 *
 * @param options how long to wait for readiness
 * @returns the running server; its URL is `redis://127.0.0.1:PORT`
 *
 * @example Start Redis and restart it
 * ```ts ignore
 * await using redis = await startRedis();
 * await redis.restart();
 * ```
 */
export async function startRedis(options: StartOptions = {}): Promise<RedisServer> {
  const command = await ensurePackage("redis-server", "redis-server");
  const dir = await Deno.makeTempDir({ prefix: "omniq-redis-" });
  const port = freePort();
  const spec: LaunchSpec = {
    name: "redis-server",
    command,
    args: [
      "--appendonly",
      "yes",
      "--appendfsync",
      "everysec",
      "--save",
      "",
      "--bind",
      HOST,
      "--port",
      String(port),
      "--dir",
      dir,
      "--pidfile",
      `${dir}/redis.pid`,
      "--daemonize",
      "no",
    ],
    stopSignal: "SIGTERM",
    port,
    dir,
    log: `${dir}/server.log`,
    readyTimeoutMs: options.readyTimeoutMs,
    // Redis accepts connections while it replays the AOF and answers -LOADING until done.
    probe: async () => {
      const reply = await tcpExchange(port, {
        send: "PING\r\n",
        until: (bytes) => bytes.includes(10),
      });
      return new TextDecoder().decode(reply).startsWith("+PONG");
    },
  };
  let server = await launch(spec);
  let restarting: Promise<void> = Promise.resolve();
  const base = handle(`redis://${HOST}:${port}`, dir, {
    stop: () => restarting.then(() => server.stop()),
    stopProcess: () => server.stopProcess(),
  });
  return {
    ...base,
    restart() {
      restarting = restarting.then(async () => {
        await server.stopProcess();
        server = await launch(spec);
      });
      return restarting;
    },
  };
}

/** A NATS server; it can also be restarted on the same port and store directory. */
export interface NatsServer extends TestServer {
  /**
   * Stop the server with SIGTERM, wait for it to exit, then start it again on the same port
   * and JetStream store directory. Resolves once it accepts connections again.
   */
  restart(): Promise<void>;
}

/** Options of {@linkcode startNats}. */
export interface NatsStartOptions extends StartOptions {
  /**
   * Whether JetStream is on (`-js`).
   * @default {true}
   */
  jetstream?: boolean;
  /** More `nats-server` arguments, e.g. `["--user", "u", "--pass", "p"]`. */
  args?: string[];
}

/**
 * Start a NATS server with JetStream on (`-js`), its store in a fresh temp directory.
 *
 * @param options how long to wait for readiness; JetStream off or extra arguments
 * @returns the running server; its URL is `nats://127.0.0.1:PORT`
 *
 * @example Start NATS
 * ```ts ignore
 * await using nats = await startNats();
 * console.log(nats.url);
 * ```
 */
export async function startNats(options: NatsStartOptions = {}): Promise<NatsServer> {
  const command = await ensurePackage("nats-server", "nats-server");
  const dir = await Deno.makeTempDir({ prefix: "omniq-nats-" });
  const port = freePort();
  const spec: LaunchSpec = {
    name: "nats-server",
    command,
    args: [
      ...(options.jetstream === false ? [] : ["-js"]),
      "-a",
      HOST,
      "-p",
      String(port),
      "-sd",
      `${dir}/jetstream`,
      ...(options.args ?? []),
    ],
    stopSignal: "SIGTERM",
    port,
    dir,
    log: `${dir}/server.log`,
    readyTimeoutMs: options.readyTimeoutMs,
    probe: async () => {
      const info = await tcpExchange(port, { until: (bytes) => bytes.includes(10) });
      return new TextDecoder().decode(info).startsWith("INFO ");
    },
  };
  let server = await launch(spec);
  let restarting: Promise<void> = Promise.resolve();
  const base = handle(`nats://${HOST}:${port}`, dir, {
    stop: () => restarting.then(() => server.stop()),
    stopProcess: () => server.stopProcess(),
  });
  return {
    ...base,
    restart() {
      restarting = restarting.then(async () => {
        await server.stopProcess();
        server = await launch(spec);
      });
      return restarting;
    },
  };
}

/**
 * The URL of a test server, from the environment that `tests/run.ts` sets. Throws when it is
 * missing, so a test never passes or skips silently without its server.
 *
 * @param kind which server
 * @returns its URL
 *
 * @example In a test file
 * ```ts ignore
 * const url = testServerUrl("redis"); // "redis://127.0.0.1:41234"
 * ```
 */
export function testServerUrl(kind: "postgres" | "redis" | "nats"): string {
  const name = TEST_ENV[kind];
  const url = Deno.env.get(name);
  if (!url) {
    throw new Error(
      `${name} is not set: run the tests with "deno task test", which starts the servers, ` +
        `or set it to the URL of a ${kind} server`,
    );
  }
  return url;
}

/**
 * Restart the Redis server that `tests/run.ts` started, through the endpoint it names in
 * `OMNIQ_TEST_REDIS_CONTROL`. The runner owns the server process, so the restarted server is
 * still its child and is stopped at the end of the run. Resolves once Redis answers PING again.
 *
 * @returns when the server is back
 *
 * @example Check that data survives a restart
 * ```ts ignore
 * await restartRedisFromEnv();
 * ```
 */
export async function restartRedisFromEnv(): Promise<void> {
  const url = Deno.env.get(TEST_ENV.redisControl);
  if (!url) {
    throw new Error(
      `${TEST_ENV.redisControl} is not set: only a Redis server started by tests/run.ts ` +
        `("deno task test") can be restarted by a test`,
    );
  }
  const response = await fetch(url, { method: "POST" });
  const body = await response.text();
  if (!response.ok) {
    throw new Error(`restarting Redis failed (HTTP ${response.status}): ${body}`);
  }
}

/** Options for {@linkcode tcpExchange}. */
export interface TcpExchangeOptions {
  /** What to write once connected. */
  send?: string | Uint8Array;
  /** Called with all bytes read so far; reading stops when it returns true. */
  until: (bytes: Uint8Array) => boolean;
  /**
   * Give up (and close the connection) after this many milliseconds.
   * @default {5000}
   */
  timeoutMs?: number;
}

/**
 * Connect to 127.0.0.1:`port`, write `send`, read until `until` is satisfied, and close the
 * connection whatever happens. Enough to speak one request of Redis, NATS or PostgreSQL's
 * protocol without a client library.
 *
 * @param port the TCP port on 127.0.0.1
 * @param options what to send and when to stop reading
 * @returns every byte read
 *
 * @example Ping Redis
 * ```ts ignore
 * const reply = await tcpExchange(6379, { send: "PING\r\n", until: (b) => b.includes(10) });
 * ```
 */
export async function tcpExchange(port: number, options: TcpExchangeOptions): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: HOST, port });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    conn.close();
  };
  const timeoutMs = options.timeoutMs ?? 5000;
  const timer = setTimeout(close, timeoutMs);
  try {
    if (options.send !== undefined) {
      const bytes = typeof options.send === "string"
        ? new TextEncoder().encode(options.send)
        : options.send;
      for (let written = 0; written < bytes.length;) {
        written += await conn.write(bytes.subarray(written));
      }
    }
    let received = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    while (!options.until(received)) {
      const n = await conn.read(chunk).catch((error) => {
        if (closed) throw new Error(`127.0.0.1:${port}: no complete reply in ${timeoutMs} ms`);
        throw error;
      });
      if (n === null) throw new Error(`127.0.0.1:${port}: connection closed before a reply`);
      const next = new Uint8Array(received.length + n);
      next.set(received);
      next.set(chunk.subarray(0, n), received.length);
      received = next;
    }
    return received;
  } finally {
    clearTimeout(timer);
    close();
  }
}

// --- process management ---------------------------------------------------------------

/** How {@linkcode launch} starts one server process and knows it is ready. */
export interface LaunchSpec {
  name: string;
  command: string;
  args: string[];
  stopSignal: Deno.Signal;
  asUser?: string;
  port: number;
  dir: string;
  log: string;
  readyTimeoutMs?: number;
  /** Extra readiness check, run once the port accepts connections. */
  probe?: () => Promise<boolean>;
}

/** A server process {@linkcode launch} started. */
export interface Launched {
  /** Stop the process and remove its directory. */
  stop(): Promise<void>;
  /** Stop the process only. */
  stopProcess(): Promise<void>;
}

function handle(url: string, dir: string, server: Launched): TestServer & Launched {
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= server.stop());
  return {
    url,
    port: Number(new URL(url).port),
    dir,
    stop,
    stopProcess: () => server.stopProcess(),
    [Symbol.asyncDispose]: stop,
  };
}

/**
 * Start a server process as our direct child (killed with us), and wait until its port
 * accepts connections and its probe, if any, says ready.
 *
 * @param spec what to run and how to know it is ready
 * @returns its handle
 */
export async function launch(spec: LaunchSpec): Promise<Launched> {
  const child = spawnServer(spec);
  let exited: Deno.CommandStatus | undefined;
  const status = child.status.then((s) => (exited = s));
  const stopProcess = async () => {
    if (exited) return;
    try {
      child.kill(spec.stopSignal);
    } catch {
      // It exited between the check and the signal.
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      status.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS))),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await status;
    }
  };
  const launched: Launched = {
    stopProcess,
    stop: async () => {
      await stopProcess();
      await Deno.remove(spec.dir, { recursive: true }).catch(() => {});
    },
  };
  try {
    await waitReady(spec, () => exited);
  } catch (error) {
    await launched.stop().catch(() => {});
    throw error;
  }
  return launched;
}

function spawnServer(spec: LaunchSpec): Deno.ChildProcess {
  // `sh -c 'exec "$@" >>LOG 2>&1'` sends the server's output to its log file and then becomes
  // the server (same pid), so the server stays our direct child and nothing has to pump pipes.
  // Before that exec, setpriv (util-linux) sets PR_SET_PDEATHSIG: the kernel signals the
  // server if this process dies without stopping it. It also switches user; the death signal
  // must be set after the switch, since a change of credentials clears it, which setpriv does.
  const setpriv = findSetpriv();
  const prefix = setpriv
    ? [
      setpriv,
      `--pdeathsig=${spec.stopSignal}`,
      ...(spec.asUser ? userFlags(spec.asUser) : []),
      "--",
    ]
    : spec.asUser
    ? switchUser(spec.asUser)
    : [];
  return new Deno.Command("sh", {
    args: ["-c", 'exec "$@" >>"$0" 2>&1', spec.log, ...prefix, spec.command, ...spec.args],
    cwd: spec.dir,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

/** The argv prefix that runs a command as `user`: setpriv where there is one, else runuser. */
function switchUser(user: string): string[] {
  const setpriv = findSetpriv();
  return setpriv ? [setpriv, ...userFlags(user), "--"] : ["runuser", "-u", user, "--"];
}

function userFlags(user: string): string[] {
  return [`--reuid=${user}`, `--regid=${user}`, "--init-groups"];
}

let setprivPath: string | undefined | null = null;

/** setpriv (util-linux) on Linux, looked up once; spawning needs the answer synchronously. */
function findSetpriv(): string | undefined {
  if (setprivPath !== null) return setprivPath;
  setprivPath = undefined;
  if (Deno.build.os !== "linux") return undefined;
  for (const dir of ["/usr/bin", "/bin", ...SBIN_DIRS]) {
    try {
      if (Deno.statSync(`${dir}/setpriv`).isFile) return (setprivPath = `${dir}/setpriv`);
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

async function waitReady(
  spec: LaunchSpec,
  exited: () => Deno.CommandStatus | undefined,
): Promise<void> {
  const timeoutMs = spec.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  while (Date.now() < deadline) {
    const status = exited();
    if (status) {
      throw new Error(
        `${spec.name} exited (code ${status.code}) before accepting connections on ` +
          `${HOST}:${spec.port}; the end of its log:\n${await logTail(spec.log)}`,
      );
    }
    try {
      const conn = await Deno.connect({ hostname: HOST, port: spec.port });
      conn.close();
      if (!spec.probe || await spec.probe()) return;
      lastError = "the readiness probe said not yet";
    } catch (error) {
      lastError = error instanceof Error ? error.message : String(error);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(
    `${spec.name} did not accept connections on ${HOST}:${spec.port} within ${timeoutMs} ms ` +
      `(last: ${lastError}); the end of its log:\n${await logTail(spec.log)}`,
  );
}

// --- small helpers --------------------------------------------------------------------

/**
 * Debian's PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`), the newest version.
 *
 * @returns their directory, or `undefined` when none is installed
 */
export async function findPostgresBindir(): Promise<string | undefined> {
  const candidates: string[] = [];
  const pgConfig = await findBinary("pg_config");
  if (pgConfig) {
    const result = await runCommand(pgConfig, ["--bindir"]);
    if (result.ok) candidates.push(result.output.trim());
  }
  // Debian's pg_config (libpq-dev) may name /usr/bin, which has no initdb: check, then glob.
  try {
    const versions: string[] = [];
    for await (const entry of Deno.readDir("/usr/lib/postgresql")) versions.push(entry.name);
    versions.sort((a, b) => Number(b) - Number(a) || b.localeCompare(a));
    candidates.push(...versions.map((v) => `/usr/lib/postgresql/${v}/bin`));
  } catch {
    // No server packages installed.
  }
  for (const dir of candidates) {
    if (await isExecutable(`${dir}/initdb`) && await isExecutable(`${dir}/postgres`)) return dir;
  }
  return undefined;
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

async function lookupUser(name: string): Promise<{ uid: number; gid: number }> {
  const passwd = await Deno.readTextFile("/etc/passwd");
  for (const line of passwd.split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`user "${name}" not found in /etc/passwd (the postgresql package creates it)`);
}

/** What {@linkcode runCommand} saw of a finished command. */
export interface CommandResult {
  ok: boolean;
  code: number;
  output: string;
}

/**
 * Run a command to its end, its output captured (stdout then stderr).
 *
 * @param command the program
 * @param args its arguments
 * @param options a user to run it as, a working directory
 * @returns whether it succeeded, its exit code and output
 */
export async function runCommand(
  command: string,
  args: string[],
  options: { asUser?: string; cwd?: string } = {},
): Promise<CommandResult> {
  const argv = options.asUser
    ? [...switchUser(options.asUser), command, ...args]
    : [command, ...args];
  const result = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: options.cwd,
    env: { DEBIAN_FRONTEND: "noninteractive", LC_ALL: "C" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    ok: result.success,
    code: result.code,
    output: decoder.decode(result.stdout) + decoder.decode(result.stderr),
  };
}

async function logTail(path: string, lines = 30): Promise<string> {
  try {
    return tail(await Deno.readTextFile(path), lines);
  } catch (error) {
    return `(no log at ${path}: ${error instanceof Error ? error.message : error})`;
  }
}

function tail(text: string, lines: number): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}
