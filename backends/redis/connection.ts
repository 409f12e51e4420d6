// The Redis engine's connection: one node-redis client shared by the queue and the two
// stores, the Lua code (a function library, or scripts by SHA on older servers) and the
// wake-up subscriber on a connection of its own.

import { createClient } from "redis";
import type { Attachment, Effects, Subscription } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { delay, within, withResolvers } from "../../src/kit/async.ts";
import { closedError } from "../../src/kit/policy.ts";
import { arr, type Json, toEvent, toResult } from "./codec.ts";
import { functionLibrary, SCRIPT_NAMES, type ScriptName, SCRIPTS } from "./lua/mod.ts";
import { describeTarget, type ResolvedOptions } from "./options.ts";

/** The driver's client. */
export type Client = ReturnType<typeof createClient>;

/** A driver error's message, with its cause's when that says more. */
export function message(error: unknown): string {
  const e = error as { message?: unknown; cause?: unknown };
  const text = typeof e?.message === "string" ? e.message : String(error);
  const cause = (e?.cause as { message?: unknown })?.message;
  return typeof cause === "string" && cause !== text ? `${text} (${cause})` : text;
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
export interface Outcome {
  events: unknown;
  results: unknown;
  x: unknown;
}

/**
 * The outcome of a task-changing script: `[x, results, event, event id, …]` as `finish` in
 * lua/mod.ts returns it, or one JSON document (a refusal before any change).
 */
export function outcome(reply: unknown): Outcome {
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
export class Connection {
  readonly client: Client;
  readonly options: ResolvedOptions;
  attached: Attachment = { results: true, events: true };
  /** Set once the first connection succeeded: from then on, losses are retried. */
  opened = false;
  #closed = false;
  /** Aborted on close: ends the subscriber's pause between attempts. */
  #closing = new AbortController();
  /** The function library's name (used while `#shas` is empty). */
  #library = "";
  /** The scripts' SHAs, on a server without functions. */
  #shas = new Map<ScriptName, string>();
  #subscribers = new Set<Subscriber>();
  #subscriber: Client | undefined;
  #listening: Promise<void> | undefined;
  /**
   * Settles once the first SUBSCRIBE is acknowledged, or its first attempt failed (workers
   * poll until a later attempt succeeds), or the connection closed; it never rejects.
   */
  #subscribed: Promise<void> | undefined;

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
    if (this.#closed) throw closedError(describeTarget(this.options));
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

  /**
   * Call `onWake` when a task of `queues` becomes due in any process; `ready` settles once
   * the server acknowledged the subscription (or the first attempt failed: then workers
   * poll until a retry succeeds).
   */
  subscribe(queues: string[], onWake: () => void): Subscription {
    const subscriber: Subscriber = { queues: new Set(queues), onWake };
    this.#subscribers.add(subscriber);
    if (!this.#listening) {
      const first = withResolvers<void>();
      this.#subscribed = first.promise;
      // A subscriber that cannot even be made leaves the workers polling, as a failed one.
      this.#listening = this.#listen(first.resolve).catch(() => {}).then(first.resolve);
    }
    const stop = () => {
      this.#subscribers.delete(subscriber);
    };
    return Object.assign(stop, { ready: this.#subscribed! });
  }

  /**
   * Subscribe to the wake channel on a connection of its own (subscribers can do no else);
   * `settled` is called after the first attempt, whatever its end.
   */
  async #listen(settled: () => void): Promise<void> {
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
        // node-redis resolves this on the server's reply to SUBSCRIBE: from then on every
        // PUBLISH to the channel reaches the listener.
        await sub.subscribe(`${this.prefix}wake`, (queue: string) => {
          for (const s of this.#subscribers) if (s.queues.has(queue)) s.onWake();
        });
        settled();
        return;
      } catch {
        // Workers poll at their interval meanwhile; try again later.
        settled();
        this.#subscriber = undefined;
        try {
          sub.destroy();
        } catch {
          // It never connected.
        }
        await delay(pause, { signal: this.#closing.signal });
      }
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#closing.abort();
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
