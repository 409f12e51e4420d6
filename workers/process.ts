/**
 * The process pool: `size` subprocesses of the runtime itself (`deno run`, or `node`),
 * each running one task at a time, speaking frames over stdio (see `process_entry.ts`).
 * On Deno a child gets read access to its task modules (and to OmniQ's own modules when
 * they are local files) plus what `worker.permissions` grants, never `-A`; Node has no
 * permissions, and a pool given some there is refused rather than run unconfined. A child that crashes or exits mid-task fails
 * (then retries) that task only and is replaced; a task whose signal aborts (timeout,
 * cancel, lost lease, shutdown) has its child killed.
 *
 * @module
 */

import { ConfigError, OmniQError } from "../src/errors.ts";
import type { SerializedError } from "../src/types.ts";
import { type ChildProcess, runtime, siblingModule } from "../src/runtime/mod.ts";
import type { Executor } from "./executor.ts";
import { encodeFrame, readFrames } from "./frames.ts";
import { reviveError } from "./pool.ts";
import type { RunMessage } from "./runner.ts";

/** Deno permissions a child may have, beyond reading its modules. */
export interface ChildPermissions {
  /** `--allow-read`: `true` for all, or paths (added to the derived module paths). */
  read?: boolean | string[];
  /** `--allow-write`. */
  write?: boolean | string[];
  /** `--allow-net`: `true`, or hosts. */
  net?: boolean | string[];
  /** `--allow-env`: `true`, or names. */
  env?: boolean | string[];
  /** `--allow-run`: `true`, or programs. */
  run?: boolean | string[];
  /** `--allow-sys`: `true`, or APIs. */
  sys?: boolean | string[];
  /** `--allow-ffi`: `true`, or paths. */
  ffi?: boolean | string[];
}

const PERMISSION_KEYS = ["read", "write", "net", "env", "run", "sys", "ffi"] as const;

/** Options of {@linkcode ProcessPool}. */
export interface ProcessPoolOptions {
  /** How many children (= tasks at once). */
  size: number;
  /** Task module URLs each child imports. */
  modules: string[];
  /** What the handlers may do. */
  permissions?: ChildPermissions;
}

type Reply =
  | { type: "ready" }
  | { type: "init-error"; error: SerializedError }
  | { type: "progress"; fraction: number }
  | { type: "done"; value: Uint8Array }
  | { type: "error"; error: SerializedError };

function dirOf(url: URL): string {
  return decodeURIComponent(new URL(".", url).pathname);
}

/** The `deno run` flags of a child: derived module reads, plus the granted permissions. */
export function childFlags(modules: string[], permissions: ChildPermissions = {}): string[] {
  for (const key of Object.keys(permissions)) {
    if (!(PERMISSION_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(
        `worker.permissions.${key}: unknown permission; expected one of ${
          PERMISSION_KEYS.join(", ")
        }`,
      );
    }
  }
  const entry = siblingModule("./process_entry", import.meta.url);
  if (runtime.name === "node") {
    const granted = PERMISSION_KEYS.filter((key) => permissions[key] !== undefined);
    if (granted.length > 0) {
      throw new ConfigError(
        `worker.permissions.${granted[0]}: Node has no permission system, so a process ` +
          "pool cannot confine its children there; remove worker.permissions to run on Node",
      );
    }
    return [decodeURIComponent(entry.pathname)];
  }
  const reads = new Set<string>();
  if (entry.protocol === "file:") reads.add(dirOf(new URL("../", entry)));
  for (const m of modules) {
    const url = new URL(m);
    if (url.protocol === "file:") reads.add(dirOf(url));
  }
  const flags = ["run", "--quiet", "--no-prompt"];
  const config = new URL("../deno.json", entry);
  if (config.protocol === "file:") {
    try {
      runtime.fs.statSync(decodeURIComponent(config.pathname));
      flags.push(`--config=${decodeURIComponent(config.pathname)}`);
    } catch { /* published: the package's own imports apply */ }
  }
  for (const key of PERMISSION_KEYS) {
    const granted = permissions[key];
    if (key === "read") {
      if (granted === true) flags.push("--allow-read");
      else {
        for (const p of granted || []) reads.add(p);
        if (reads.size > 0) flags.push(`--allow-read=${[...reads].join(",")}`);
      }
      continue;
    }
    if (granted === true) flags.push(`--allow-${key}`);
    else if (Array.isArray(granted) && granted.length > 0) {
      flags.push(`--allow-${key}=${granted.join(",")}`);
    } else if (granted !== undefined && granted !== false && !Array.isArray(granted)) {
      throw new ConfigError(`worker.permissions.${key}: expected true, false or a list`);
    }
  }
  flags.push(entry.href);
  return flags;
}

/** One child and what it is doing. */
class Child {
  readonly process: ChildProcess;
  readonly ready: Promise<void>;
  readonly exited: Promise<number>;
  onReply: ((reply: Reply) => void) | undefined;
  onExit: ((code: number) => void) | undefined;
  dead = false;

  constructor(flags: string[], modules: string[]) {
    this.process = runtime.spawn({ args: flags });
    this.exited = this.process.exited;
    this.exited.then((code) => {
      this.dead = true;
      this.onExit?.(code);
    });
    this.ready = new Promise((resolve, reject) => {
      this.onReply = (reply) => {
        if (reply.type === "ready") resolve();
        else if (reply.type === "init-error") reject(reviveError(reply.error));
      };
      this.onExit = (code) =>
        reject(
          new OmniQError(`a pool process exited with code ${code} while loading task modules`),
        );
    });
    this.ready.catch(() => {});
    this.#read();
    this.send({ type: "init", modules });
  }

  async #read(): Promise<void> {
    try {
      for await (const reply of readFrames(this.process.stdout)) this.onReply?.(reply as Reply);
    } catch {
      // The child died; `exited` reports it.
    }
  }

  send(message: unknown): void {
    this.process.write(encodeFrame(message)).catch(() => {});
  }

  async kill(): Promise<void> {
    if (!this.dead) this.process.kill();
    await this.process.closeStdin().catch(() => {});
    await this.exited;
  }
}

/** A pool of subprocesses of the runtime itself. */
export class ProcessPool implements Executor {
  #options: ProcessPoolOptions;
  #flags: string[];
  #idle: Child[] = [];
  #busy = new Set<Child>();
  #closed = false;
  #dying = new Set<Promise<void>>();

  /** Make a pool; children start on first use and are kept for the next task. */
  constructor(options: ProcessPoolOptions) {
    this.#options = options;
    this.#flags = childFlags(options.modules, options.permissions);
  }

  /** Run one attempt in a child. */
  async run(
    message: RunMessage,
    signal: AbortSignal,
    progress: (fraction: number) => void,
  ): Promise<Uint8Array> {
    if (this.#closed) throw new OmniQError("the process pool is closed");
    const child = this.#idle.pop() ?? new Child(this.#flags, this.#options.modules);
    this.#busy.add(child);
    let healthy = false;
    try {
      await child.ready;
      return await new Promise<Uint8Array>((resolve, reject) => {
        const finish = (fn: () => void) => {
          signal.removeEventListener("abort", onAbort);
          child.onReply = undefined;
          child.onExit = undefined;
          fn();
        };
        const onAbort = () => finish(() => reject(signal.reason));
        signal.addEventListener("abort", onAbort, { once: true });
        child.onExit = (code) =>
          finish(() =>
            reject(
              new OmniQError(
                `the pool process running task ${message.id} exited with code ${code}`,
              ),
            )
          );
        child.onReply = (reply) => {
          switch (reply.type) {
            case "progress":
              try {
                progress(reply.fraction);
              } catch { /* a bad fraction is the handler's problem, not the pool's */ }
              break;
            case "done":
              healthy = true;
              finish(() => resolve(reply.value));
              break;
            case "error":
              healthy = true;
              finish(() => reject(reviveError(reply.error)));
              break;
          }
        };
        if (signal.aborted) return onAbort();
        if (child.dead) return child.onExit(-1);
        child.send({ type: "run", run: message });
      });
    } finally {
      this.#busy.delete(child);
      if (healthy && !child.dead && !this.#closed) this.#idle.push(child);
      else {
        const dying = child.kill();
        this.#dying.add(dying);
        dying.finally(() => this.#dying.delete(dying));
      }
    }
  }

  /** Kill every child and wait for them to end. */
  async close(): Promise<void> {
    this.#closed = true;
    const all = [...this.#idle, ...this.#busy];
    this.#idle = [];
    this.#busy.clear();
    await Promise.all([...all.map((c) => c.kill()), ...this.#dying]);
  }
}
