/**
 * Store URLs: parsed by hand per scheme (`new URL("file:./dir")` would turn a relative path
 * into an absolute one), each engine loaded with a literal dynamic import so a program only
 * loads, and only needs permissions for, the engines it names.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { ConfigError } from "./errors.ts";
import type { EngineOptions } from "./omniq.ts";

const PLANNED = new Set<string>();

/**
 * Hide the password (and a token in the user part) of a URL, for messages and logs.
 *
 * @param url Any URL string.
 * @returns The URL with its credentials replaced by `***`.
 *
 * @example
 * ```ts
 * import { redactUrl } from "@omniq/omniq";
 * console.assert(redactUrl("redis://app:secret@host:6379") === "redis://app:***@host:6379");
 * ```
 */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_all, scheme, user: string) => {
    const colon = user.indexOf(":");
    return `${scheme}${colon === -1 ? "***" : `${user.slice(0, colon)}:***`}@`;
  });
}

/** Split `scheme:rest`; `undefined` when there is no scheme. */
export function splitScheme(url: string): [string, string] | undefined {
  const match = /^([a-z][a-z0-9+.-]*):(.*)$/is.exec(url);
  return match ? [match[1].toLowerCase(), match[2]] : undefined;
}

/** The path part of `sqlite:` and `file:` URLs: `./x`, `x`, `/abs/x` or `///abs/x`. */
export function urlPath(rest: string): string {
  if (rest.startsWith("///")) return rest.slice(2);
  if (rest.startsWith("//")) {
    throw new ConfigError(
      `expected a path like ./omniq.db or ///absolute/path, got "//${rest.slice(2)}"`,
    );
  }
  return decodeURIComponent(rest);
}

/**
 * Open the engine a URL names.
 *
 * @param url `memory:`, `sqlite:./omniq.db`, `sqlite::memory:` …
 * @param key The config key it came from, for error messages.
 */
export async function openBackendUrl(url: string, key = "backend"): Promise<Backend> {
  if (typeof url !== "string") {
    throw new ConfigError(`${key}: expected a URL string, got ${typeof url}`);
  }
  const parts = splitScheme(url);
  if (!parts) {
    throw new ConfigError(
      `${key}: expected a URL such as "sqlite:./omniq.db" or "memory:", got "${redactUrl(url)}"`,
    );
  }
  const [scheme, rest] = parts;
  switch (scheme) {
    case "memory": {
      const { openMemory } = await import("../backends/memory/mod.ts");
      return openMemory(rest === "" ? undefined : rest);
    }
    case "sqlite": {
      const { openSqlite } = await import("../backends/sqlite/mod.ts");
      let path: string;
      try {
        path = rest === "" ? "./omniq.db" : rest === ":memory:" ? ":memory:" : urlPath(rest);
      } catch (error) {
        throw new ConfigError(`${key}: ${(error as Error).message}`);
      }
      return await openSqlite(path);
    }
    case "file": {
      const { openFile } = await import("../backends/file/mod.ts");
      let path: string;
      try {
        path = rest === ""
          ? "./omniq-data"
          : urlPath(rest.startsWith("//localhost/") ? rest.slice(11) : rest);
      } catch (error) {
        throw new ConfigError(`${key}: ${(error as Error).message}`);
      }
      return await openFile(path);
    }
    case "kv": {
      const { openKv } = await import("../backends/kv/mod.ts");
      try {
        return await openKv(url);
      } catch (error) {
        if (error instanceof ConfigError) error.message = `${key}: ${error.message}`;
        throw error;
      }
    }
    case "postgres":
    case "postgresql": {
      const { openPostgres } = await import("../backends/postgres/mod.ts");
      try {
        return await openPostgres(url);
      } catch (error) {
        if (error instanceof ConfigError) error.message = `${key}: ${error.message}`;
        throw error;
      }
    }
    case "redis":
    case "rediss": {
      const { openRedis } = await import("../backends/redis/mod.ts");
      try {
        return await openRedis(url);
      } catch (error) {
        if (error instanceof ConfigError) error.message = `${key}: ${error.message}`;
        throw error;
      }
    }
    case "nats": {
      const { openNats } = await import("../backends/nats/mod.ts");
      try {
        return await openNats(url);
      } catch (error) {
        if (error instanceof ConfigError) error.message = `${key}: ${error.message}`;
        throw error;
      }
    }
  }
  if (PLANNED.has(scheme)) {
    throw new ConfigError(
      `${key}: the "${scheme}:" engine is not available in this version of OmniQ; ` +
        `available: memory:, sqlite:, file:, kv:, postgres:, redis:, nats:`,
    );
  }
  throw new ConfigError(
    `${key}: unknown URL scheme "${scheme}:" in "${redactUrl(url)}"; expected one of memory:, ` +
      `sqlite:, file:, kv:, postgres:, redis:, nats:`,
  );
}

/**
 * Open the server engine an options object names: `{ postgres: {…} }`, `{ redis: {…} }` or
 * `{ nats: {…} }` (checked by `validateConfig` first).
 *
 * @param spec The engine and its options.
 * @param key The config key it came from, for error messages.
 */
export async function openBackendOptions(spec: EngineOptions, key = "backend"): Promise<Backend> {
  const [engine] = Object.keys(spec);
  const options = (spec as Record<string, Record<string, unknown>>)[engine];
  try {
    switch (engine) {
      case "postgres": {
        const { openPostgres } = await import("../backends/postgres/mod.ts");
        return await openPostgres(options);
      }
      case "redis": {
        const { openRedis } = await import("../backends/redis/mod.ts");
        return await openRedis(options);
      }
      case "nats": {
        const { openNats } = await import("../backends/nats/mod.ts");
        return await openNats(options);
      }
    }
  } catch (error) {
    if (error instanceof ConfigError) error.message = `${key}.${engine}: ${error.message}`;
    throw error;
  }
  throw new ConfigError(`${key}: unknown engine "${engine}"; expected postgres, redis or nats`);
}
