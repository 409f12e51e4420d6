/**
 * Configuration from code, plain dictionaries, YAML/JSON files and `OMNIQ_*` environment
 * variables (optionally from a `.env` file), all validated against one schema into the
 * same {@linkcode OmniQConfig}. This module holds the schema and its check; the loaders
 * (`config_sources.ts`) read files and the environment only when a program asks, so
 * permissions stay what it asked for: `OmniQ.open` reads neither.
 *
 * Precedence, key by key: code > file > environment > defaults.
 *
 * @example Merging a file, the environment and code
 * ```ts
 * import { configFromEnv, resolveConfig } from "@omniq/omniq";
 * const config = await resolveConfig({
 *   code: { worker: { concurrency: 4 } },
 *   env: configFromEnv({ env: { OMNIQ_QUEUE: "memory:", OMNIQ_WORKER_CONCURRENCY: "8" } }),
 * });
 * console.assert(config.worker?.concurrency === 4 && config.queue === "memory:");
 * ```
 *
 * @module
 */

import { parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";
import type { OmniQConfig } from "./api.ts";
import { nearest } from "./options.ts";
import {
  engineForScheme,
  type OptionKind,
  registeredEngines,
  workerTypeNames,
} from "./registry.ts";
import { redactUrl, splitScheme } from "./url.ts";

/** What one configuration key takes. */
export type Kind =
  | "store"
  | "string"
  | "positive"
  | "count"
  | "priority"
  | "duration"
  | "boolean"
  | "strings"
  | "tasks"
  | "backoff"
  | "permissions"
  | "clock"
  | { oneOf: readonly string[] };

/** Keys and what each takes; a nested schema for a section (`worker`, `defaults`). */
export interface Schema {
  [key: string]: Kind | Schema;
}

/** Every configuration key, and what it takes. */
export const SCHEMA: Schema = {
  backend: "store",
  queue: "store",
  results: "store",
  events: "store",
  tasks: "tasks",
  codec: { oneOf: ["msgpack", "json"] },
  worker: {
    // The worker types registered when the config is checked (`workers/builtin.ts`'s own).
    type: {
      get oneOf() {
        return workerTypeNames();
      },
    },
    concurrency: "positive",
    queues: "strings",
    lease: "duration",
    pollInterval: "duration",
    shutdownGrace: "duration",
    sweepInterval: "duration",
    scheduler: "boolean",
    permissions: "permissions",
  },
  clock: "clock",
  defaults: {
    queue: "string",
    priority: "priority",
    retries: "count",
    backoff: "backoff",
    timeout: "duration",
    ttl: "duration",
    resultTtl: "duration",
    deadLetter: "string",
    ageAfter: "duration",
    groupConcurrency: "positive",
    keepCompleted: "duration",
    eventTtl: "duration",
  },
};

/** The keys that name a store. */
export const STORE_KEYS = ["backend", "queue", "results", "events"];

/** The URL schemes of the registered engines. */
function storeSchemes(): string[] {
  return registeredEngines().flatMap((engine) => [...engine.schemes]);
}

/**
 * The object form of each engine's store, as a file may give it: `backend: { postgres:
 * { host: …, port: … } }`, keyed by the engine's name with the option schema it registered;
 * each engine checks the values further when it opens.
 */
function engineOptions(): Record<string, Readonly<Record<string, OptionKind>>> {
  const out: Record<string, Readonly<Record<string, OptionKind>>> = {};
  for (const engine of registeredEngines()) {
    if (engine.options && engine.openOptions) out[engine.name] = engine.options;
  }
  return out;
}

const OPTION_EXPECTED: Record<OptionKind, string> = {
  string: "a string",
  port: "a port number (1 to 65535)",
  count: "a non-negative integer",
  positive: "a positive integer",
  boolean: "true or false",
  servers: "an address or a list of addresses",
  ssl: 'true, false, "require" or "prefer"',
};

function optionOk(kind: OptionKind, value: unknown): boolean {
  switch (kind) {
    case "string":
      return typeof value === "string";
    case "port":
      return Number.isInteger(value) && (value as number) >= 1 && (value as number) <= 65535;
    case "count":
      return Number.isInteger(value) && (value as number) >= 0;
    case "positive":
      return Number.isInteger(value) && (value as number) >= 1;
    case "boolean":
      return typeof value === "boolean";
    case "servers":
      return (typeof value === "string" && value !== "") ||
        (Array.isArray(value) && value.length > 0 &&
          value.every((v) => typeof v === "string" && v !== ""));
    case "ssl":
      return typeof value === "boolean" || value === "require" || value === "prefer";
  }
}

/** Check `{ postgres: {…} }`, `{ redis: {…} }` or `{ nats: {…} }`, naming a bad key's path. */
/** Keys whose values are never echoed back in an error, even of the wrong type. */
const SECRET_KEYS = new Set([
  "password",
  "pass",
  "token",
  "secretAccessKey",
  "sessionToken",
  "accountKey",
  "sasToken",
  "connectionString",
  "accessToken",
  "privateKey",
]);

function checkEngineOptions(value: Record<string, unknown>, path: string): unknown {
  const schemas = engineOptions();
  const engines = Object.keys(schemas);
  const keys = Object.keys(value);
  const expected = `a store URL, an opened backend, or the options of one engine (${
    engines.map((e) => `{ ${e}: {…} }`).join(", ")
  })`;
  if (keys.length !== 1) {
    if (keys.length > 1 && keys.every((k) => engines.includes(k))) {
      throw new ConfigError(`${path}: name one engine, got ${keys.join(" and ")}`);
    }
    return fail(path, expected, value);
  }
  const engine = keys[0];
  const schema = schemas[engine];
  if (!schema) {
    const near = nearest(engine, engines);
    throw new ConfigError(
      `${path}.${engine}: unknown engine${near ? ` (did you mean "${near}"?)` : ""}; ` +
        `expected ${expected}`,
    );
  }
  const options = value[engine];
  const at = `${path}.${engine}`;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    fail(at, `an object of ${engine} options`, options);
  }
  const out: Record<string, unknown> = {};
  for (let [key, v] of Object.entries(options as Record<string, unknown>)) {
    const kind = schema[key];
    if (kind === undefined) {
      const near = nearest(key, Object.keys(schema));
      throw new ConfigError(
        `${at}.${key}: unknown key${near ? ` (did you mean "${at}.${near}"?)` : ""}; ` +
          `expected one of ${Object.keys(schema).join(", ")}`,
      );
    }
    if (v === undefined) continue;
    // `port: ${PGPORT}` in YAML expands to a string: a number or flag in one is taken as such.
    if (typeof v === "string" && (kind === "port" || kind === "count" || kind === "positive")) {
      if (/^\d+$/.test(v.trim())) v = Number(v.trim());
    } else if (typeof v === "string" && (kind === "boolean" || kind === "ssl")) {
      if (v === "true" || v === "false") v = v === "true";
    }
    if (!optionOk(kind, v)) {
      // A password or token is never echoed back, even when it is of the wrong type.
      const secret = SECRET_KEYS.has(key);
      throw new ConfigError(
        `${at}.${key}: expected ${OPTION_EXPECTED[kind]}, got ${secret ? typeof v : describe(v)}`,
      );
    }
    const scheme = key === "url" ? splitScheme(v as string)?.[0] : undefined;
    if (key === "url" && (scheme === undefined || engineForScheme(scheme)?.name !== engine)) {
      fail(`${at}.url`, `a ${engine} URL`, redactUrl(v as string));
    }
    out[key] = v;
  }
  return { [engine]: out };
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "an object";
  return String(value);
}

function fail(path: string, expected: string, value: unknown): never {
  throw new ConfigError(`${path}: expected ${expected}, got ${describe(value)}`);
}

function checkValue(kind: Kind, value: unknown, path: string): unknown {
  if (typeof kind === "object") {
    if (typeof value !== "string" || !kind.oneOf.includes(value)) {
      fail(path, `one of ${kind.oneOf.map((k) => JSON.stringify(k)).join(", ")}`, value);
    }
    return value;
  }
  switch (kind) {
    case "store": {
      if (typeof value === "string") {
        const scheme = splitScheme(value)?.[0];
        // Each engine by its first scheme: "postgres:", not also "postgresql:".
        const known = registeredEngines().map((e) => `${e.schemes[0]}:`).join(", ");
        if (!scheme) {
          throw new ConfigError(
            `${path}: expected a store URL (${known}), got "${redactUrl(value)}"`,
          );
        }
        if (!storeSchemes().includes(scheme)) {
          throw new ConfigError(
            `${path}: unknown URL scheme "${scheme}:" in "${
              redactUrl(value)
            }"; expected one of ${known}`,
          );
        }
        return value;
      }
      if (value && typeof value === "object" && "queue" in value && "results" in value) {
        return value;
      }
      if (isPlain(value)) return checkEngineOptions(value as Record<string, unknown>, path);
      return fail(path, "a store URL, an opened backend or an engine's options", value);
    }
    case "string":
      if (typeof value !== "string" || value === "") fail(path, "a non-empty string", value);
      return value;
    case "positive":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
        fail(path, "a positive integer", value);
      }
      return value;
    case "count":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
        fail(path, "a non-negative integer", value);
      }
      return value;
    case "priority":
      if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 9) {
        fail(path, "an integer from 0 to 9", value);
      }
      return value;
    case "duration":
      parseDuration(value as number, path);
      return value;
    case "boolean":
      if (typeof value !== "boolean") fail(path, "true or false", value);
      return value;
    case "strings":
      if (!Array.isArray(value) || value.length === 0) {
        fail(path, "a non-empty list of names", value);
      }
      value.forEach((v, i) => {
        if (typeof v !== "string" || v === "") fail(`${path}[${i}]`, "a non-empty string", v);
      });
      return value;
    case "tasks":
      if (!Array.isArray(value)) fail(path, "a list of task module URLs or paths", value);
      value.forEach((v, i) => {
        const ok = typeof v === "string" ? v !== "" : v instanceof URL ||
          (v && typeof v === "object" && typeof v.name === "string" &&
            typeof v.handler === "function");
        if (!ok) fail(`${path}[${i}]`, "a module URL or path, or a task definition", v);
      });
      return value;
    case "backoff":
      if (typeof value === "string" || typeof value === "number") {
        parseDuration(value, path);
        return value;
      }
      if (!value || typeof value !== "object") {
        fail(path, "a duration or { type, delay, max? }", value);
      }
      return value; // checked in full by the options resolver at open
    case "permissions":
      if (!value || typeof value !== "object" || Array.isArray(value)) {
        fail(path, 'an object of Deno permissions (e.g. { net: ["api.example.com"] })', value);
      }
      return value;
    case "clock":
      if (!value || typeof (value as { now?: unknown }).now !== "function") {
        fail(path, "a clock (an object with a now() method giving epoch ms)", value);
      }
      return value;
  }
}

function validateObject(input: unknown, schema: Schema, path: string): Record<string, unknown> {
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    fail(path || "config", "an object", input);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input as Record<string, unknown>)) {
    const at = path ? `${path}.${key}` : key;
    const kind = schema[key];
    if (kind === undefined) {
      const near = nearest(key, Object.keys(schema));
      throw new ConfigError(
        `${at}: unknown key${near ? ` (did you mean "${path ? `${path}.` : ""}${near}"?)` : ""}; ` +
          `expected one of ${Object.keys(schema).join(", ")}`,
      );
    }
    if (value === undefined) continue;
    out[key] = typeof kind === "object" && !("oneOf" in kind)
      ? validateObject(value, kind as Schema, at)
      : checkValue(kind as Kind, value, at);
  }
  return out;
}

/**
 * Validate a configuration (from code, JSON or YAML): unknown keys (with the nearest
 * valid one), wrong types and bad values fail with the key's path.
 *
 * @param input The configuration: a URL string or an object.
 * @returns The same configuration, checked.
 * @throws {ConfigError} Naming the key path and what was expected.
 *
 * @example A misspelled key
 * ```ts
 * import { validateConfig } from "@omniq/omniq";
 * try {
 *   validateConfig({ worker: { concurency: 2 } });
 * } catch (e) {
 *   console.assert((e as Error).message.includes('did you mean "worker.concurrency"'));
 * }
 * ```
 */
export function validateConfig(input: unknown): OmniQConfig {
  if (typeof input === "string") {
    return { backend: checkValue("store", input, "backend") as string };
  }
  return validateObject(input, SCHEMA, "") as OmniQConfig;
}

/** Whether a value is a plain object (not an array, a class instance or null). */
export function isPlain(value: unknown): boolean {
  return !!value && typeof value === "object" && !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype;
}
