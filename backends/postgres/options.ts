/**
 * The PostgreSQL engine's options and their checks: a `postgres://` URL and the fields
 * that override its parts, resolved into one plain set the connection is made from.
 *
 * @module
 */

import { ConfigError } from "../../src/errors.ts";

/** Where the PostgreSQL engine connects, and how. */
export interface PostgresOptions {
  /** A `postgres://` URL; the fields below override its parts. */
  url?: string;
  /**
   * The server's host name or address.
   * @default {"localhost"}
   */
  host?: string;
  /**
   * The server's port.
   * @default {5432}
   */
  port?: number;
  /** The database; defaults to the user's name. */
  database?: string;
  /** The user to log in as (required, here or in the URL). */
  user?: string;
  /** The password, if the server asks for one. */
  password?: string;
  /**
   * The schema that holds OmniQ's tables: letters, digits and `_`, not starting with a digit.
   * @default {"omniq"}
   */
  schema?: string;
  /**
   * The most connections this engine opens (plus one for `LISTEN`).
   * @default {10}
   */
  pool?: number;
  /**
   * How long a connection attempt may take, in seconds.
   * @default {10}
   */
  connectTimeout?: number;
  /**
   * TLS: `false` (off), `true` or `"require"` (on), `"prefer"`.
   * @default {false}
   */
  ssl?: boolean | "require" | "prefer";
}

/** The options checked, with their defaults filled in (no URL: its parts are merged). */
export interface ResolvedPostgresOptions {
  /** The server's host. */
  host: string;
  /** The server's port. */
  port: number;
  /** The database. */
  database: string;
  /** The user. */
  user: string;
  /** The password, if one was given. */
  password?: string;
  /** The schema, lower-cased. */
  schema: string;
  /** The pool's size. */
  pool: number;
  /** The connection timeout, in seconds. */
  connectTimeout: number;
  /** TLS. */
  ssl: boolean | "require" | "prefer";
}

/** The schema name rule: a plain identifier, quoted anyway when used. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/i;

/** Where the engine connects, for messages: never the password. */
export function describeTarget(o: ResolvedPostgresOptions): string {
  return `postgres ${o.user}@${o.host}:${o.port}/${o.database} (schema ${o.schema})`;
}

function positive(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new ConfigError(
      `postgres ${what}: expected a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** The options a URL gives. */
function fromUrl(href: string): PostgresOptions {
  const out: PostgresOptions = {};
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    throw new ConfigError(`postgres url: expected postgres://user@host:port/database`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw new ConfigError(`postgres url: expected a postgres:// URL, got "${url.protocol}"`);
  }
  if (url.hostname) out.host = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, "");
  if (url.port) out.port = Number(url.port);
  if (url.username) out.user = decodeURIComponent(url.username);
  if (url.password) out.password = decodeURIComponent(url.password);
  const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (db) out.database = db;
  for (const [k, v] of url.searchParams) {
    switch (k) {
      case "schema":
        out.schema = v;
        break;
      case "pool":
      case "max":
        out.pool = positive(v, k);
        break;
      case "connect_timeout":
        out.connectTimeout = positive(v, k);
        break;
      case "sslmode":
        out.ssl = v === "disable" ? false : v === "prefer" ? "prefer" : "require";
        break;
      default:
        throw new ConfigError(
          `postgres url: unknown parameter "${k}"; expected schema, pool, connect_timeout ` +
            `or sslmode`,
        );
    }
  }
  return out;
}

function stripUndefined(o: PostgresOptions): PostgresOptions {
  return Object.fromEntries(
    Object.entries(o).filter(([k, v]) => v !== undefined && k !== "url"),
  ) as PostgresOptions;
}

/**
 * Check and fill in the options; a URL's parts are overridden by the explicit fields.
 *
 * @throws {ConfigError} When an option is not valid.
 */
export function resolveOptions(options: PostgresOptions): ResolvedPostgresOptions {
  const given = options.url === undefined ? {} : fromUrl(options.url);
  const o = { ...given, ...stripUndefined(options) };
  const schema = o.schema ?? "omniq";
  if (typeof schema !== "string" || !SCHEMA_NAME.test(schema) || schema.length > 50) {
    throw new ConfigError(
      `postgres schema: expected letters, digits and _ (not starting with a digit, at most ` +
        `50), got ${JSON.stringify(schema)}`,
    );
  }
  const user = o.user;
  if (typeof user !== "string" || user === "") {
    throw new ConfigError(
      "postgres user: expected a user name (in the URL, postgres://user@host/db, or as user)",
    );
  }
  const port = o.port ?? 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`postgres port: expected 1 to 65535, got ${JSON.stringify(port)}`);
  }
  const resolved: ResolvedPostgresOptions = {
    host: o.host ?? "localhost",
    port,
    database: o.database ?? user,
    user,
    schema: schema.toLowerCase(),
    pool: positive(o.pool ?? 10, "pool"),
    connectTimeout: positive(o.connectTimeout ?? 10, "connectTimeout"),
    ssl: o.ssl ?? false,
  };
  if (o.password !== undefined) resolved.password = o.password;
  return resolved;
}
