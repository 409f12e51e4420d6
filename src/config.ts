/**
 * Configuration from code, plain dictionaries, YAML/JSON files and `OMNIQ_*` environment
 * variables (optionally from a `.env` file), all validated against one schema into the
 * same {@linkcode OmniQConfig}. `OmniQ.open` never reads files or the environment; the
 * loaders here do, when a program asks, so permissions stay what it asked for.
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
import { type OptionKind, registeredEngines, workerTypeNames } from "./registry.ts";
import { redactUrl, splitScheme } from "./url.ts";

type Kind =
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
  | { oneOf: readonly string[] };

interface Schema {
  [key: string]: Kind | Schema;
}

/** Every configuration key, and what it takes. */
const SCHEMA: Schema = {
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
  defaults: {
    queue: "string",
    priority: "priority",
    retries: "count",
    backoff: "backoff",
    timeout: "duration",
    ttl: "duration",
    resultTtl: "duration",
    keepCompleted: "duration",
    eventTtl: "duration",
  },
};

/** The keys that name a store. */
const STORE_KEYS = ["backend", "queue", "results", "events"];

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
      const secret = key === "password" || key === "pass" || key === "token";
      throw new ConfigError(
        `${at}.${key}: expected ${OPTION_EXPECTED[kind]}, got ${secret ? typeof v : describe(v)}`,
      );
    }
    if (key === "url" && !splitScheme(v as string)?.[0].startsWith(engine)) {
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

/** Options of {@linkcode configFromEnv}. */
export interface EnvOptions {
  /** A `.env` file to read too; variables already in the environment win over it. */
  envFile?: string;
  /** The variables to read instead of the process environment (for tests, or Node). */
  env?: Record<string, string | undefined>;
}

function envName(path: string[]): string {
  return "OMNIQ_" + path.map((p) => p.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()).join("_");
}

/** Every `OMNIQ_*` variable, with the key path it sets and its kind. */
function envTable(): Map<string, { path: string[]; kind: Kind }> {
  const table = new Map<string, { path: string[]; kind: Kind }>();
  const walk = (schema: Schema, path: string[]) => {
    for (const [key, kind] of Object.entries(schema)) {
      const at = [...path, key];
      if (typeof kind === "object" && !("oneOf" in kind)) walk(kind as Schema, at);
      else table.set(envName(at), { path: at, kind: kind as Kind });
    }
  };
  walk(SCHEMA, []);
  return table;
}

/** The environment variable of each key path (`worker.concurrency` → `OMNIQ_WORKER_CONCURRENCY`). */
export function envNames(): Record<string, string> {
  return Object.fromEntries([...envTable()].map(([name, { path }]) => [path.join("."), name]));
}

function fromEnvString(kind: Kind, raw: string, name: string): unknown {
  const value = raw.trim();
  switch (kind) {
    case "positive":
    case "count":
    case "priority":
      return /^-?\d+$/.test(value) ? Number(value) : value;
    case "duration":
      return /^\d+$/.test(value) ? Number(value) : value;
    case "boolean":
      if (/^(true|1|yes|on)$/i.test(value)) return true;
      if (/^(false|0|no|off)$/i.test(value)) return false;
      return value;
    case "strings":
    case "tasks":
      return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "permissions":
    case "backoff":
      if (value.startsWith("{")) {
        try {
          return JSON.parse(value);
        } catch {
          throw new ConfigError(`${name}: expected JSON, got ${JSON.stringify(value)}`);
        }
      }
      return value;
    default:
      return value;
  }
}

/** Parse the text of a `.env` file: `KEY=value` lines, `#` comments, quotes, `export`. */
export function parseDotenv(text: string, source = ".env"): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) {
      throw new ConfigError(`${source}:${i + 1}: expected KEY=value, got ${JSON.stringify(line)}`);
    }
    let value = match[2];
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.endsWith(quote) && value.length >= 2) {
      value = value.slice(1, -1);
      if (quote === '"') value = value.replace(/\\n/g, "\n").replace(/\\"/g, '"');
    } else {
      value = value.replace(/\s+#.*$/, "");
    }
    out[match[1]] = value;
  }
  return out;
}

// deno-lint-ignore no-explicit-any
const runtime = (globalThis as any).Deno as {
  env: { toObject(): Record<string, string>; get(name: string): string | undefined };
  readTextFileSync(path: string): string;
  readTextFile(path: string): Promise<string>;
  cwd(): string;
} | undefined;

/**
 * Configuration from `OMNIQ_*` environment variables, named after the keys:
 * `OMNIQ_QUEUE`, `OMNIQ_WORKER_CONCURRENCY`, `OMNIQ_DEFAULTS_RESULT_TTL` … Lists are
 * comma-separated. Reads the process environment (needs `--allow-env`) unless `env` is given.
 *
 * @param options A `.env` file to read too, or the variables to use.
 * @returns The configuration the variables set (only those keys).
 * @throws {ConfigError} For an unknown `OMNIQ_*` variable (naming the nearest) or a bad value.
 */
export function configFromEnv(options: EnvOptions = {}): OmniQConfig {
  let vars: Record<string, string | undefined>;
  if (options.env) vars = { ...options.env };
  else {
    if (!runtime) throw new ConfigError("configFromEnv: no environment here; pass { env }");
    vars = runtime.env.toObject();
  }
  if (options.envFile !== undefined) {
    if (!runtime) throw new ConfigError("configFromEnv: cannot read envFile here");
    let text: string;
    try {
      text = runtime.readTextFileSync(options.envFile);
    } catch (error) {
      throw new ConfigError(`envFile: cannot read ${options.envFile}: ${(error as Error).message}`);
    }
    vars = { ...parseDotenv(text, options.envFile), ...vars };
  }
  const table = envTable();
  const config: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(vars)) {
    if (!name.startsWith("OMNIQ_") || raw === undefined) continue;
    const entry = table.get(name);
    if (!entry) {
      const near = nearest(name, [...table.keys()]);
      throw new ConfigError(
        `${name}: unknown OmniQ variable${near ? ` (did you mean ${near}?)` : ""}`,
      );
    }
    let target = config;
    for (const part of entry.path.slice(0, -1)) {
      target = (target[part] ??= {}) as Record<string, unknown>;
    }
    target[entry.path.at(-1)!] = fromEnvString(entry.kind, raw, name);
  }
  try {
    return validateConfig(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      // Name the variable the user set, as well as the key.
      const key = /^([\w.[\]]+):/.exec(error.message)?.[1]?.replace(/\[\d+\]$/, "");
      const name = key && envNames()[key];
      if (name) error.message = `${name} (${error.message}`.replace(/: expected/, "): expected");
    }
    throw error;
  }
}

function expand(
  value: unknown,
  source: string,
  path: string,
  env: (name: string) => string | undefined,
): unknown {
  if (typeof value === "string") {
    return value.replace(
      /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g,
      (_all, name, fallback) => {
        const v = env(name);
        if (v !== undefined && v !== "") return v;
        if (fallback !== undefined) return fallback;
        throw new ConfigError(`${source}: ${path}: \${${name}} is not set in the environment`);
      },
    );
  }
  if (Array.isArray(value)) return value.map((v, i) => expand(v, source, `${path}[${i}]`, env));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, expand(v, source, path ? `${path}.${k}` : k, env)]),
    );
  }
  return value;
}

/** Options of {@linkcode loadConfig}. */
export interface LoadOptions {
  /** Where `${VAR}` references come from; the process environment when omitted. */
  env?: Record<string, string | undefined>;
}

/**
 * Load a YAML (`.yaml`, `.yml`) or JSON (`.json`) configuration file. `${VAR}` and
 * `${VAR:-default}` in YAML strings expand from the environment; relative task module
 * paths resolve against the file's directory.
 *
 * @param path The file's path.
 * @param options Where `${VAR}` references come from.
 * @returns The validated configuration.
 * @throws {ConfigError} When the file cannot be read or parsed, or a key is bad (with the
 *   file name and the key path).
 */
export async function loadConfig(
  path: string | URL,
  options: LoadOptions = {},
): Promise<OmniQConfig> {
  if (!runtime) throw new ConfigError("loadConfig: no file system here");
  const file = path instanceof URL ? path.pathname : path;
  const yaml = /\.ya?ml$/i.test(file);
  if (!yaml && !/\.json$/i.test(file)) {
    throw new ConfigError(`${file}: expected a .yaml, .yml or .json file`);
  }
  let text: string;
  try {
    text = await runtime.readTextFile(file);
  } catch (error) {
    throw new ConfigError(`cannot read config file ${file}: ${(error as Error).message}`);
  }
  let data: unknown;
  if (yaml) {
    // The YAML parser loads only when a YAML file is read.
    const { parseYaml } = await import("./yaml.ts");
    data = parseYaml(text, file);
    const env = options.env
      ? (name: string) => options.env![name]
      : (name: string) => runtime!.env.get(name);
    data = expand(data, file, "", env);
  } else {
    try {
      data = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(`${file}: invalid JSON: ${(error as Error).message}`);
    }
  }
  if (data === null || data === undefined) data = {};
  let config: OmniQConfig;
  try {
    config = validateConfig(data);
  } catch (error) {
    if (error instanceof ConfigError) error.message = `${file}: ${error.message}`;
    throw error;
  }
  if (config.tasks) {
    const base = new URL(`file://${absolute(file)}`);
    config.tasks = config.tasks.map((t) =>
      typeof t === "string" && !/^[a-z][a-z0-9+.-]*:/i.test(t) ? new URL(t, base).href : t
    );
  }
  return config;
}

function absolute(file: string): string {
  return file.startsWith("/") ? file : `${runtime!.cwd()}/${file}`;
}

/** The sources {@linkcode resolveConfig} merges. */
export interface ConfigSources {
  /** From code: wins over everything. */
  code?: OmniQConfig | string;
  /** A file path to load, or a configuration loaded already. */
  file?: string | URL | OmniQConfig;
  /** From the environment (`configFromEnv()`), or `true` to read it now. */
  env?: OmniQConfig | true;
}

function merge(
  low: Record<string, unknown>,
  high: Record<string, unknown>,
): Record<string, unknown> {
  const out = { ...low };
  for (const [key, value] of Object.entries(high)) {
    if (value === undefined) continue;
    const under = out[key];
    // A store given as options replaces a lower one whole: two engines' options never mix.
    out[key] = key !== "tasks" && !STORE_KEYS.includes(key) && isPlain(value) && isPlain(under)
      ? merge(under as Record<string, unknown>, value as Record<string, unknown>)
      : value;
  }
  return out;
}

function isPlain(value: unknown): boolean {
  return !!value && typeof value === "object" && !Array.isArray(value) &&
    Object.getPrototypeOf(value) === Object.prototype;
}

/**
 * Merge configuration sources key by key: code > file > environment > defaults.
 *
 * @param sources The code, file and environment configurations (each optional).
 * @returns One validated configuration for `OmniQ.open`.
 */
export async function resolveConfig(sources: ConfigSources): Promise<OmniQConfig> {
  const env = sources.env === true ? configFromEnv() : sources.env ?? {};
  const file = typeof sources.file === "string" || sources.file instanceof URL
    ? await loadConfig(sources.file)
    : sources.file ?? {};
  const code = typeof sources.code === "string" ? { backend: sources.code } : sources.code ?? {};
  const merged = [validateConfig(env), validateConfig(file), validateConfig(code)].reduce(
    (low, high) => merge(low as Record<string, unknown>, high as Record<string, unknown>),
    {},
  );
  return validateConfig(merged);
}
