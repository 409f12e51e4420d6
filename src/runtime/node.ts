/**
 * The runtime seam on Node (and on Bun, which implements the same modules): threads on
 * `node:worker_threads`, subprocesses on `node:child_process` running `node`, files on
 * `node:fs`, SQLite on `node:sqlite` where Node has it and on the optional `better-sqlite3`
 * otherwise. Deno KV is refused on Node with a clear error (see `openKv`). The optional packages are imported
 * only when an engine opens, so a missing one is an error at open naming what to install,
 * never a crash at import.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { spawn as spawnChild } from "node:child_process";
import * as fsSync from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { isMainThread, parentPort, Worker as NodeWorker } from "node:worker_threads";
import type { IncomingMessage, ServerResponse } from "node:http";
import { ConfigError, OmniQError } from "../errors.ts";
import type {
  ChildProcess,
  FileInfo,
  FileSystem,
  HttpServer,
  Runtime,
  SqliteDatabase,
  SqliteStatement,
  Thread,
  ThreadPort,
} from "./types.ts";

/** A `node:http` request as a `fetch` `Request`. */
function toRequest(req: IncomingMessage, signal: AbortSignal, hostname: string): Request {
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) headers.append(k, one);
  }
  const method = req.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(`http://${req.headers.host ?? hostname}${req.url ?? "/"}`, {
    method,
    headers,
    signal,
    body: hasBody ? (Readable.toWeb(req) as unknown as ReadableStream<Uint8Array>) : undefined,
    // @ts-ignore: Node's fetch needs it for a streamed body; the DOM types lack it.
    duplex: "half",
  });
}

/** Write a `fetch` `Response` to a `node:http` response. */
async function send(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string | string[]> = {};
  response.headers.forEach((v, k) => {
    headers[k] = k === "set-cookie" ? response.headers.getSetCookie() : v;
  });
  res.writeHead(response.status, headers);
  if (response.body) {
    // A client that goes away cancels the body (an event stream never ends by itself).
    const reader = response.body.getReader();
    res.once("close", () => void reader.cancel().catch(() => {}));
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (!res.write(value)) await new Promise((resolve) => res.once("drain", resolve));
    }
  }
  res.end();
}

async function serveHttp(
  address: { hostname: string; port: number },
  handler: (request: Request) => Promise<Response>,
): Promise<HttpServer> {
  const http = await import("node:http");
  const server = http.createServer((req, res) => {
    const abort = new AbortController();
    res.on("close", () => abort.abort());
    handler(toRequest(req, abort.signal, address.hostname))
      .then((response) => send(response, res))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.hostname, () => resolve());
  });
  const bound = server.address();
  return {
    port: typeof bound === "object" && bound ? bound.port : address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function info(s: fsSync.Stats): FileInfo {
  return { isFile: s.isFile(), isDirectory: s.isDirectory(), size: s.size, mtime: s.mtime };
}

function code(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

const fs: FileSystem = {
  readFile: async (path) => new Uint8Array(await fsp.readFile(path)),
  readTextFile: (path) => fsp.readFile(path, "utf8"),
  readTextFileSync: (path) => fsSync.readFileSync(path, "utf8"),
  writeFile: (path, data, options) =>
    fsp.writeFile(path, data, { flag: options?.createNew ? "wx" : options?.append ? "a" : "w" }),
  mkdir: async (path) => {
    await fsp.mkdir(path, { recursive: true });
  },
  remove: (path, options) =>
    options?.recursive ? fsp.rm(path, { recursive: true }) : fsp.rm(path).catch(async (e) => {
      // `rm` refuses an empty directory without `recursive`; Deno's `remove` takes it.
      if (code(e) === "ERR_FS_EISDIR" || code(e) === "EISDIR") return await fsp.rmdir(path);
      throw e;
    }),
  rename: (from, to) => fsp.rename(from, to),
  link: (from, to) => fsp.link(from, to),
  stat: async (path) => info(await fsp.stat(path)),
  statSync: (path) => info(fsSync.statSync(path)),
  utime: (path, atime, mtime) => fsp.utimes(path, atime, mtime),
  async *readDir(path) {
    for (const e of await fsp.readdir(path, { withFileTypes: true })) {
      yield { name: e.name, isFile: e.isFile(), isDirectory: e.isDirectory() };
    }
  },
  makeTempDir: (prefix) => fsp.mkdtemp(join(tmpdir(), prefix)),
  realPath: (path) => fsp.realpath(path),
  isNotFound: (error) => code(error) === "ENOENT",
  isAlreadyExists: (error) => code(error) === "EEXIST",
};

function startThread(url: URL): Thread {
  const worker = new NodeWorker(fileURLToPath(url));
  let terminated = false;
  let failed = false;
  return {
    post: (message, transfer) => worker.postMessage(message, transfer as never),
    onMessage: (listener) => worker.on("message", listener),
    onError: (listener) =>
      worker.on("error", (error) => {
        failed = true;
        listener(error instanceof Error ? error.message : String(error));
      }),
    onExit: (listener) =>
      worker.on("exit", (exitCode) => {
        if (!terminated && !failed) listener(exitCode);
      }),
    terminate: () => {
      terminated = true;
      void worker.terminate();
    },
  };
}

function threadPort(): ThreadPort {
  const port = parentPort;
  if (isMainThread || !port) throw new OmniQError("threadPort: not in a worker thread");
  return {
    post: (message, transfer) => port.postMessage(message, transfer as never),
    onMessage: (listener) => port.on("message", listener),
    close: () => process.exit(0),
  };
}

function spawn(options: { args: string[] }): ChildProcess {
  const child = spawnChild(process.execPath, options.args, {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const exited = new Promise<number>((resolve) => {
    child.once("exit", (exitCode, signal) => resolve(exitCode ?? (signal ? 128 + 9 : 1)));
    child.once("error", () => resolve(-1));
  });
  // A child that dies mid-write must not become an uncaught error in the parent.
  child.stdin!.on("error", () => {});
  return {
    write: (bytes) =>
      new Promise<void>((resolve, reject) =>
        child.stdin!.write(bytes, (error) => error ? reject(error) : resolve())
      ),
    // `end`'s callback never comes for a pipe the child's death destroyed: settle on any end.
    closeStdin: () =>
      new Promise<void>((resolve) => {
        const stdin = child.stdin!;
        if (stdin.destroyed || stdin.writableFinished) return resolve();
        stdin.once("close", () => resolve());
        stdin.once("error", () => resolve());
        stdin.end(() => resolve());
      }),
    stdout: child.stdout! as AsyncIterable<Uint8Array>,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    },
  };
}

/** Import a package by a name held in a variable, so no bundler or checker resolves it. */
function importOptional(name: string): Promise<Record<string, unknown>> {
  return import(name);
}

/** `better-sqlite3` behind the shape of `node:sqlite`'s `DatabaseSync`. */
function fromBetterSqlite(db: {
  exec(sql: string): void;
  prepare(sql: string): {
    reader: boolean;
    run(...p: unknown[]): { changes: number; lastInsertRowid: number | bigint };
    get(...p: unknown[]): unknown;
    all(...p: unknown[]): unknown[];
  };
  inTransaction: boolean;
  close(): void;
}): SqliteDatabase {
  // better-sqlite3 binds Buffers, not plain Uint8Arrays; node:sqlite binds both.
  const bind = (params: unknown[]) =>
    params.map((p) =>
      p instanceof Uint8Array && !Buffer.isBuffer(p)
        ? Buffer.from(p.buffer, p.byteOffset, p.byteLength)
        : p
    );
  // It returns blobs as Buffers; the codec takes plain Uint8Arrays only, as node:sqlite gives.
  const row = (r: unknown) => {
    if (r === undefined) return undefined;
    const out = r as Record<string, unknown>;
    for (const key in out) {
      const v = out[key];
      if (Buffer.isBuffer(v)) out[key] = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    }
    return out;
  };
  return {
    exec: (sql) => db.exec(sql),
    prepare(sql): SqliteStatement {
      const s = db.prepare(sql);
      return {
        run: (...p) => s.run(...bind(p)),
        get: (...p) => s.reader ? row(s.get(...bind(p))) : (s.run(...bind(p)), undefined),
        all: (...p) => s.reader ? s.all(...bind(p)).map((r) => row(r)!) : (s.run(...bind(p)), []),
      };
    },
    get isTransaction() {
      return db.inTransaction;
    },
    close: () => db.close(),
  };
}

/** The oldest Node major OmniQ runs on (the npm package's `engines`). */
export const OLDEST_NODE = 20;

/**
 * Why a Node version cannot run OmniQ, or `undefined` when it can.
 *
 * @param version A Node version as in `process.versions.node`, e.g. `"20.20.2"`.
 * @returns The reason, naming the version to install, or `undefined`.
 */
export function nodeUnsupported(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1]);
  if (major >= OLDEST_NODE) return undefined;
  return `OmniQ needs Node ${OLDEST_NODE} or later (Node 22.13 or later for the built-in ` +
    `SQLite driver); this is Node ${version}`;
}

async function openSqlite(path: string): Promise<SqliteDatabase> {
  let builtin: typeof import("node:sqlite") | undefined;
  try {
    builtin = await import("node:sqlite");
  } catch { /* older than Node 22.5, or flagged off: better-sqlite3 below */ }
  if (builtin) return new builtin.DatabaseSync(path) as unknown as SqliteDatabase;
  let mod: Record<string, unknown>;
  try {
    mod = await importOptional("better-sqlite3");
  } catch (error) {
    throw new OmniQError(
      `sqlite: Node ${process.versions.node} has no node:sqlite (it comes unflagged in Node ` +
        "22.13); install the better-sqlite3 package (npm install better-sqlite3) or use Node " +
        "22.13 or later",
      { cause: error },
    );
  }
  const Database = (mod.default ?? mod) as new (path: string) => Parameters<
    typeof fromBetterSqlite
  >[0];
  return fromBetterSqlite(new Database(path));
}

// Deno KV on Node would be the @deno/kv package, but under it OmniQ's conformance suite hangs
// (a dedupe-key case spins), so the engine is refused with a way out rather than run unproven.
// deno-lint-ignore require-await
async function openKv(_path?: string): Promise<unknown> {
  throw new ConfigError(
    "kv: the Deno KV engine runs on Deno only for now (under Node, the @deno/kv package does " +
      "not yet pass OmniQ's conformance suite); on Node use the sqlite: or file: engine, which " +
      "need no server, or a server engine",
  );
}

/** The Node edge of the runtime seam. */
export const nodeRuntime: Runtime = {
  name: "node",
  get version() {
    return process.versions.node;
  },
  unsupported: () => nodeUnsupported(process.versions.node),
  get pid() {
    return process.pid;
  },
  env: (name) => process.env[name],
  envObject: () => {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) out[k] = v;
    return out;
  },
  args: () => process.argv.slice(2),
  cwd: () => process.cwd(),
  fs,
  unrefTimer: (timer) => (timer as unknown as { unref?: () => void }).unref?.(),
  startThread,
  threadPort,
  // `process.exit` in a worker thread ends that thread only; the parent hears its code.
  trapThreadExit: () => {},
  spawn,
  stdin: () => process.stdin as AsyncIterable<Uint8Array>,
  writeStdoutSync(bytes) {
    for (let written = 0; written < bytes.length;) {
      written += fsSync.writeSync(1, bytes, written);
    }
  },
  writeStderrSync(bytes) {
    for (let written = 0; written < bytes.length;) {
      written += fsSync.writeSync(2, bytes, written);
    }
  },
  isTerminal: (stream) => (stream === "stdout" ? process.stdout : process.stderr).isTTY === true,
  onTerminate(listener) {
    const int = () => listener("SIGINT");
    const term = () => listener("SIGTERM");
    process.on("SIGINT", int);
    process.on("SIGTERM", term);
    return () => {
      process.off("SIGINT", int);
      process.off("SIGTERM", term);
    };
  },
  exit: (exitCode) => process.exit(exitCode),
  openSqlite,
  serveHttp,
  openKv,
};
