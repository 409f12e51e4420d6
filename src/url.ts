/**
 * Store URLs: split by hand (`new URL("file:./dir")` would turn a relative path into an
 * absolute one) and handed to the engine the registry has for the scheme, which loads its
 * code only then, so a program only loads, and only needs permissions for, the engines it
 * names.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { ConfigError } from "./errors.ts";
import type { EngineOptions } from "./api.ts";
import { engineForScheme, engineNamed, registeredEngines } from "./registry.ts";

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

/** `memory:, sqlite:, …`: each registered engine by its first scheme. */
function knownSchemes(): string {
  return registeredEngines().map((e) => `${e.schemes[0]}:`).join(", ");
}

/** Prefix a config error of an engine with the key its store came from. */
async function naming<T>(key: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (error) {
    if (error instanceof ConfigError) error.message = `${key}: ${error.message}`;
    throw error;
  }
}

/**
 * Open the engine a URL names, through the registry.
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
  const engine = engineForScheme(scheme);
  if (!engine) {
    throw new ConfigError(
      `${key}: unknown URL scheme "${scheme}:" in "${
        redactUrl(url)
      }"; expected one of ${knownSchemes()}`,
    );
  }
  return await naming(key, () => engine.openUrl(url, rest));
}

/**
 * Open the engine an options object names: `{ postgres: {…} }`, `{ redis: {…} }` or
 * `{ nats: {…} }` (checked by `validateConfig` first).
 *
 * @param spec The engine and its options.
 * @param key The config key it came from, for error messages.
 */
export async function openBackendOptions(spec: EngineOptions, key = "backend"): Promise<Backend> {
  const [name] = Object.keys(spec);
  const options = (spec as Record<string, Record<string, unknown>>)[name];
  const engine = engineNamed(name);
  if (!engine?.openOptions) {
    const named = registeredEngines().filter((e) => e.openOptions).map((e) => e.name);
    throw new ConfigError(`${key}: unknown engine "${name}"; expected ${named.join(", ")}`);
  }
  return await naming(`${key}.${name}`, () => engine.openOptions!(options));
}
