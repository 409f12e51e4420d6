/**
 * The runtime seam on Deno: the one module of the library (with `cli.ts` and the tests)
 * that calls `Deno.*`. Every call is made inside a function, so importing this module on
 * Node (where `src/runtime/mod.ts` picks the Node edge instead) touches nothing.
 *
 * @module
 */

import { ConfigError, OmniQError } from "../errors.ts";
import type {
  ChildProcess,
  FileInfo,
  FileSystem,
  HttpServer,
  Runtime,
  SqliteDatabase,
  Thread,
  ThreadPort,
} from "./types.ts";

declare const self: {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
  close(): void;
};

function info(s: Deno.FileInfo): FileInfo {
  return { isFile: s.isFile, isDirectory: s.isDirectory, size: s.size, mtime: s.mtime };
}

/**
 * A blocking call as a settled promise. The `file:` engine's calls are small reads and
 * writes of a local directory, each a few microseconds in the page cache: made blocking
 * they cost that, where an asynchronous call also waits for a thread of the pool to take
 * it and hand it back (most of a `file:` worker's time went to that wait).
 */
function settled<T>(call: () => T): Promise<T> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}

const fs: FileSystem = {
  readFile: (path) => settled(() => Deno.readFileSync(path)),
  readTextFile: (path) => Deno.readTextFile(path),
  readTextFileSync: (path) => Deno.readTextFileSync(path),
  writeFile: (path, data, options) =>
    settled(() =>
      Deno.writeFileSync(path, data, {
        ...(options?.createNew ? { createNew: true } : {}),
        ...(options?.append ? { append: true } : {}),
      })
    ),
  mkdir: (path) => Deno.mkdir(path, { recursive: true }),
  remove: (path, options) =>
    options?.recursive ? Deno.remove(path, options) : settled(() => Deno.removeSync(path)),
  rename: (from, to) => settled(() => Deno.renameSync(from, to)),
  link: (from, to) => settled(() => Deno.linkSync(from, to)),
  stat: (path) => settled(() => info(Deno.statSync(path))),
  statSync: (path) => info(Deno.statSync(path)),
  utime: (path, atime, mtime) => Deno.utime(path, atime, mtime),
  async *readDir(path) {
    for (const e of Deno.readDirSync(path)) {
      yield { name: e.name, isFile: e.isFile, isDirectory: e.isDirectory };
    }
  },
  makeTempDir: (prefix) => Deno.makeTempDir({ prefix }),
  realPath: (path) => Deno.realPath(path),
  isNotFound: (error) => error instanceof Deno.errors.NotFound,
  isAlreadyExists: (error) => error instanceof Deno.errors.AlreadyExists,
};

function startThread(url: URL): Thread {
  const worker = new Worker(url, { type: "module" });
  return {
    post: (message, transfer) => worker.postMessage(message, transfer ?? []),
    onMessage: (listener) => worker.onmessage = (event) => listener(event.data),
    onError: (listener) =>
      worker.onerror = (event) => {
        event.preventDefault();
        listener(event.message);
      },
    // A Web Worker does not end by itself: `trapThreadExit` turns `Deno.exit` into a message.
    onExit: () => {},
    terminate: () => worker.terminate(),
  };
}

function threadPort(): ThreadPort {
  if (typeof self === "undefined" || typeof self.postMessage !== "function") {
    throw new OmniQError("threadPort: not in a worker thread");
  }
  return {
    post: (message, transfer) => self.postMessage(message, transfer),
    onMessage: (listener) => self.onmessage = (event) => listener(event.data),
    close: () => self.close(),
  };
}

function spawn(options: { args: string[] }): ChildProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: options.args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  return {
    write: (bytes) => writer.write(bytes),
    closeStdin: () => writer.close(),
    stdout: child.stdout,
    exited: child.status.then((s) => s.code),
    kill: () => {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    },
  };
}

async function openSqlite(path: string): Promise<SqliteDatabase> {
  const { DatabaseSync } = await import("node:sqlite");
  return new DatabaseSync(path) as unknown as SqliteDatabase;
}

function serveHttp(
  address: { hostname: string; port: number },
  handler: (request: Request) => Promise<Response>,
): Promise<HttpServer> {
  const server = Deno.serve({ ...address, onListen: () => {} }, handler);
  return Promise.resolve({
    port: server.addr.port,
    close: () => server.shutdown(),
  });
}

/** The Deno edge of the runtime seam. */
export const denoRuntime: Runtime = {
  name: "deno",
  get version() {
    return Deno.version.deno;
  },
  unsupported: () =>
    Number(Deno.version.deno.split(".")[0]) >= 2
      ? undefined
      : `OmniQ needs Deno 2 or later; this is Deno ${Deno.version.deno}`,
  get pid() {
    return Deno.pid;
  },
  env: (name) => Deno.env.get(name),
  envObject: () => Deno.env.toObject(),
  args: () => [...Deno.args],
  cwd: () => Deno.cwd(),
  fs,
  unrefTimer: (timer) => Deno.unrefTimer(timer as unknown as number),
  startThread,
  threadPort,
  trapThreadExit(report) {
    // deno-lint-ignore no-explicit-any
    (Deno as any).exit = (code?: number) => {
      report(code ?? 0);
      self.close();
    };
  },
  spawn,
  stdin: () => Deno.stdin.readable,
  writeStdoutSync(bytes) {
    for (let written = 0; written < bytes.length;) {
      written += Deno.stdout.writeSync(bytes.subarray(written));
    }
  },
  writeStderrSync(bytes) {
    for (let written = 0; written < bytes.length;) {
      written += Deno.stderr.writeSync(bytes.subarray(written));
    }
  },
  isTerminal: (stream) => (stream === "stdout" ? Deno.stdout : Deno.stderr).isTerminal(),
  onTerminate(listener) {
    const int = () => listener("SIGINT");
    const term = () => listener("SIGTERM");
    Deno.addSignalListener("SIGINT", int);
    Deno.addSignalListener("SIGTERM", term);
    return () => {
      Deno.removeSignalListener("SIGINT", int);
      Deno.removeSignalListener("SIGTERM", term);
    };
  },
  exit: (code) => Deno.exit(code),
  openSqlite,
  serveHttp,
  openKv(path) {
    const open = (Deno as unknown as { openKv?: (path?: string) => Promise<unknown> }).openKv;
    if (typeof open !== "function") {
      throw new ConfigError(
        'kv: Deno KV is not enabled: run with --unstable-kv (or "unstable": ["kv"] in deno.json)',
      );
    }
    return open(path);
  },
};
