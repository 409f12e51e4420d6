/**
 * Where a configuration comes from: `OMNIQ_*` environment variables (and a `.env` file),
 * YAML or JSON files (with `${VAR}` expansion), and code; `resolveConfig` merges them in
 * that order of precedence and checks the result with `validateConfig`.
 *
 * @module
 */

import { runtime } from "./runtime/mod.ts";
import { ConfigError } from "./errors.ts";
import type { OmniQConfig } from "./api.ts";
import { isPlain, type Kind, SCHEMA, type Schema, STORE_KEYS, validateConfig } from "./config.ts";
import { nearest } from "./options.ts";
import { engineForScheme } from "./registry.ts";

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

/**
 * OmniQ's variables that are not configuration keys, read by the command that uses them
 * (`omniq dashboard`'s token) and passed over here, not refused as unknown.
 */
export const NOT_CONFIG: readonly string[] = ["OMNIQ_DASHBOARD_TOKEN"];

/** Every `OMNIQ_*` variable, with the key path it sets and its kind. */
function envTable(): Map<string, { path: string[]; kind: Kind }> {
  const table = new Map<string, { path: string[]; kind: Kind }>();
  const walk = (schema: Schema, path: string[]) => {
    for (const [key, kind] of Object.entries(schema)) {
      const at = [...path, key];
      if (typeof kind === "object" && !("oneOf" in kind)) walk(kind as Schema, at);
      // A clock is an object of code: no variable can give one.
      else if (kind === "clock") continue;
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

/**
 * Configuration from `OMNIQ_*` environment variables, named after the keys:
 * `OMNIQ_QUEUE`, `OMNIQ_WORKER_CONCURRENCY`, `OMNIQ_DEFAULTS_RESULT_TTL` … Lists are
 * comma-separated. Reads the process environment (needs `--allow-env`) unless `env` is given.
 * A cloud store's URL (`OMNIQ_QUEUE=s3://bucket/prefix`) takes its cloud's credentials from
 * the same variables (`AWS_ACCESS_KEY_ID`…, `AZURE_STORAGE_*`, `GOOGLE_APPLICATION_CREDENTIALS`)
 * and becomes that engine's object form. The variables in {@linkcode NOT_CONFIG} are left
 * to their commands.
 *
 * @param options A `.env` file to read too, or the variables to use.
 * @returns The configuration the variables set (only those keys).
 * @throws {ConfigError} For an unknown `OMNIQ_*` variable (naming the nearest) or a bad value.
 */
export function configFromEnv(options: EnvOptions = {}): OmniQConfig {
  let vars: Record<string, string | undefined>;
  if (options.env) vars = { ...options.env };
  else {
    vars = runtime.envObject();
  }
  if (options.envFile !== undefined) {
    let text: string;
    try {
      text = runtime.fs.readTextFileSync(options.envFile);
    } catch (error) {
      throw new ConfigError(`envFile: cannot read ${options.envFile}: ${(error as Error).message}`);
    }
    vars = { ...parseDotenv(text, options.envFile), ...vars };
  }
  const table = envTable();
  const config: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(vars)) {
    if (!name.startsWith("OMNIQ_") || raw === undefined || NOT_CONFIG.includes(name)) continue;
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
    return validateConfig(withEnvironment(config, vars));
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

/**
 * The store URLs of a configuration whose engines read the environment (a cloud's usual
 * credential variables), turned into their object forms with what the environment adds.
 * A URL the environment adds nothing to stays a URL; options stay as given.
 */
function withEnvironment(
  config: Record<string, unknown>,
  vars: Record<string, string | undefined>,
): Record<string, unknown> {
  const out = { ...config };
  for (const key of STORE_KEYS) {
    const url = out[key];
    if (typeof url !== "string") continue;
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(url)?.[1]?.toLowerCase();
    const entry = scheme === undefined ? undefined : engineForScheme(scheme);
    const form = entry?.fromEnvironment?.(url, vars);
    if (form && Object.keys(form).some((k) => k !== "url")) out[key] = { [entry!.name]: form };
  }
  return out;
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
  const file = path instanceof URL ? path.pathname : path;
  const yaml = /\.ya?ml$/i.test(file);
  if (!yaml && !/\.json$/i.test(file)) {
    throw new ConfigError(`${file}: expected a .yaml, .yml or .json file`);
  }
  let text: string;
  try {
    text = await runtime.fs.readTextFile(file);
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
      : (name: string) => runtime.env(name);
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
  return file.startsWith("/") ? file : `${runtime.cwd()}/${file}`;
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

/**
 * Merge configuration sources key by key: code > file > environment > defaults. With
 * `env: true`, a cloud store's URL (`s3://`, `az://`, `gs://`), wherever it came from, also
 * takes that cloud's credentials from their usual environment variables (`AWS_*`,
 * `AZURE_STORAGE_*`, `GOOGLE_APPLICATION_CREDENTIALS`); `OmniQ.open` alone never reads them.
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
  // `env: true` reads the environment now: a store URL from code or a file gets its cloud's
  // credentials from their usual variables too.
  return validateConfig(
    sources.env === true
      ? withEnvironment(merged as Record<string, unknown>, runtime.envObject())
      : merged,
  );
}
