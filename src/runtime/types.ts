/**
 * The runtime seam's contract: everything OmniQ needs from the runtime it runs on (Deno or
 * Node) that the web platform does not give both the same way — the environment, files,
 * threads, subprocesses, the standard streams, timers that do not hold the process open,
 * the SQLite driver and Deno KV. `src/runtime/deno.ts` and `src/runtime/node.ts` implement
 * it; `src/runtime/mod.ts` picks one once, at import. The core, the engines and the workers
 * call it and never a runtime global.
 *
 * @module
 */

/** A thread started by {@linkcode Runtime.startThread}, seen from the thread that started it. */
export interface Thread {
  /** Send a message (structured clone; `transfer` moves buffers). */
  post(message: unknown, transfer?: Transferable[]): void;
  /** Called with each message the thread posts. */
  onMessage(listener: (message: unknown) => void): void;
  /** Called once when the thread fails with an uncaught error. */
  onError(listener: (message: string) => void): void;
  /** Called once when the thread ends by itself (`process.exit` on Node), with its code. */
  onExit(listener: (code: number) => void): void;
  /** Stop the thread now. */
  terminate(): void;
}

/** The current thread's link to the thread that started it. */
export interface ThreadPort {
  /** Send a message to the parent. */
  post(message: unknown, transfer?: Transferable[]): void;
  /** Called with each message from the parent. */
  onMessage(listener: (message: unknown) => void): void;
  /** End this thread. */
  close(): void;
}

/** A subprocess started by {@linkcode Runtime.spawn}, with piped stdin and stdout. */
export interface ChildProcess {
  /** Write bytes to its stdin, in order. */
  write(bytes: Uint8Array): Promise<void>;
  /** Close its stdin. */
  closeStdin(): Promise<void>;
  /** Its stdout, as chunks. */
  readonly stdout: AsyncIterable<Uint8Array>;
  /** Resolves with its exit code once it has exited (a signal gives a non-zero code). */
  readonly exited: Promise<number>;
  /** Kill it with SIGKILL; harmless once it has exited. */
  kill(): void;
}

/** What {@linkcode Runtime.spawn} starts. */
export interface SpawnOptions {
  /** Arguments after the runtime's executable (the runtime's own flags, then the script). */
  args: string[];
}

/** A statement prepared by a {@linkcode SqliteDatabase}. */
export interface SqliteStatement {
  /** Run it; the changes it made and the last inserted row id. */
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  /** The first row, or `undefined`. */
  get(...params: unknown[]): Record<string, unknown> | undefined;
  /** Every row. */
  all(...params: unknown[]): Record<string, unknown>[];
}

/**
 * The synchronous SQLite connection the SQLite engine uses: what `node:sqlite`'s
 * `DatabaseSync` and `better-sqlite3` share, behind one shape.
 */
export interface SqliteDatabase {
  /** Run statements without results. */
  exec(sql: string): void;
  /** Prepare a statement. */
  prepare(sql: string): SqliteStatement;
  /** Whether a transaction is open on this connection. */
  readonly isTransaction: boolean;
  /** Close the connection. */
  close(): void;
}

/** What a file's metadata says, as far as OmniQ reads it. */
export interface FileInfo {
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
  /** Its size in bytes. */
  size: number;
  /** Its last modification, or `null` where the platform does not say. */
  mtime: Date | null;
}

/** The file system calls of the `file:` engine and the config loaders. */
export interface FileSystem {
  /** A file's bytes. */
  readFile(path: string): Promise<Uint8Array>;
  /** A file's text (UTF-8). */
  readTextFile(path: string): Promise<string>;
  /** A file's text, blocking. */
  readTextFileSync(path: string): string;
  /** Write a file; `createNew` fails when it exists (`isAlreadyExists`); `append` adds to it. */
  writeFile(
    path: string,
    data: Uint8Array,
    options?: { createNew?: boolean; append?: boolean },
  ): Promise<void>;
  /** Make a directory and its parents; an existing one is fine. */
  mkdir(path: string): Promise<void>;
  /** Remove a file, or a directory with what it holds when `recursive`. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  /** Rename, replacing the target. */
  rename(from: string, to: string): Promise<void>;
  /** A hard link; fails when `to` exists (`isAlreadyExists`). */
  link(from: string, to: string): Promise<void>;
  /** Metadata of a path (`isNotFound` when missing). */
  stat(path: string): Promise<FileInfo>;
  /** Metadata of a path, blocking. */
  statSync(path: string): FileInfo;
  /** Set access and modification times. */
  utime(path: string, atime: Date, mtime: Date): Promise<void>;
  /** The names in a directory. */
  readDir(path: string): AsyncIterable<{ name: string; isFile: boolean; isDirectory: boolean }>;
  /** A new empty directory in the system's temporary directory. */
  makeTempDir(prefix: string): Promise<string>;
  /** The absolute, resolved form of a path. */
  realPath(path: string): Promise<string>;
  /** Whether an error says the path does not exist. */
  isNotFound(error: unknown): boolean;
  /** Whether an error says the path exists already. */
  isAlreadyExists(error: unknown): boolean;
}

/** Everything runtime-specific OmniQ calls. One implementation per runtime. */
export interface Runtime {
  /** `"deno"` or `"node"` (Bun runs the Node one). */
  readonly name: "deno" | "node";
  /** The runtime's version, e.g. `"2.9.6"` or `"20.20.2"`. */
  readonly version: string;
  /** This process's id. */
  readonly pid: number;
  /**
   * Why this runtime's version cannot run OmniQ (e.g. Node older than 20), or `undefined`
   * when it can. `OmniQ.open` throws it as a `ConfigError`.
   */
  unsupported(): string | undefined;
  /** One environment variable (Deno: needs `--allow-env`). */
  env(name: string): string | undefined;
  /** Every environment variable. */
  envObject(): Record<string, string>;
  /** The program's arguments, after the runtime's own and the script. */
  args(): string[];
  /** The working directory. */
  cwd(): string;
  /** The files. */
  readonly fs: FileSystem;
  /** Let a timer not keep the process alive. */
  unrefTimer(timer: ReturnType<typeof setTimeout>): void;
  /**
   * Start a module in a new thread (a Web Worker on Deno, `worker_threads` on Node).
   *
   * @param url The module, a `file:` URL.
   */
  startThread(url: URL): Thread;
  /** The current thread's port to its parent; throws on the main thread. */
  threadPort(): ThreadPort;
  /**
   * In a thread: make the runtime's exit call end this thread and report its code through
   * `report` instead of ending the process (on Node it already does, and the parent hears
   * of it through {@linkcode Thread.onExit}).
   */
  trapThreadExit(report: (code: number) => void): void;
  /** Start the runtime's own executable with `args`, stdin and stdout piped. */
  spawn(options: SpawnOptions): ChildProcess;
  /** This process's stdin, as chunks. */
  stdin(): AsyncIterable<Uint8Array>;
  /** Write all of `bytes` to stdout, blocking. */
  writeStdoutSync(bytes: Uint8Array): void;
  /** Write all of `bytes` to stderr, blocking. */
  writeStderrSync(bytes: Uint8Array): void;
  /** Whether a standard stream is a terminal (live lines and screen clears make sense there). */
  isTerminal(stream: "stdout" | "stderr"): boolean;
  /** Call `listener` on SIGINT and SIGTERM; returns a function that stops listening. */
  onTerminate(listener: (signal: "SIGINT" | "SIGTERM") => void): () => void;
  /** End the process. */
  exit(code: number): never;
  /**
   * Open a SQLite database file (`node:sqlite` on Deno and on Node ≥ 22.5, `better-sqlite3`
   * on older Node).
   *
   * @throws {OmniQError} Naming what to install when neither driver is there.
   */
  openSqlite(path: string): Promise<SqliteDatabase>;
  /**
   * Open a Deno KV store (Deno: `Deno.openKv`; Node: refused with a `ConfigError`).
   *
   * @throws {ConfigError} Naming what to enable or install when KV is not available here.
   */
  openKv(path?: string): Promise<unknown>;
  /**
   * Serve HTTP on an address with a `fetch`-style handler (Deno: `Deno.serve`; Node:
   * `node:http`). Port 0 takes a free port.
   *
   * @throws {Error} When the address cannot be bound (in use, not allowed).
   */
  serveHttp(
    address: { hostname: string; port: number },
    handler: (request: Request) => Promise<Response>,
  ): Promise<HttpServer>;
}

/** A running HTTP server of {@linkcode Runtime.serveHttp}. */
export interface HttpServer {
  /** The port it listens on. */
  readonly port: number;
  /** Stop listening and end its connections. */
  close(): Promise<void>;
}
