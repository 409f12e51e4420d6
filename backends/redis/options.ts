// The Redis engine's options: the `redis://` URL and the option fields, checked and filled
// in with the same clear errors whether they come from a URL, YAML or code.

import { ConfigError } from "../../src/errors.ts";

/** Where the Redis engine connects, and how. */
export interface RedisOptions {
  /** A `redis://` or `rediss://` URL; the fields below override its parts. */
  url?: string;
  /**
   * The server's host name or address.
   * @default {"localhost"}
   */
  host?: string;
  /**
   * The server's port.
   * @default {6379}
   */
  port?: number;
  /**
   * The database index.
   * @default {0}
   */
  db?: number;
  /** The ACL user, if any. */
  username?: string;
  /** The password, if the server asks for one. */
  password?: string;
  /**
   * The start of every key this engine uses; a hash tag in it (`{omniq}:`) puts every key
   * in one cluster slot.
   * @default {"omniq:"}
   */
  prefix?: string;
  /**
   * The approximate most events the stream keeps (older ones are trimmed as new come).
   * @default {100000}
   */
  eventsMaxLen?: number;
  /**
   * How long the first connection may take, in seconds.
   * @default {5}
   */
  connectTimeout?: number;
  /**
   * TLS (on for `rediss://`).
   * @default {false}
   */
  tls?: boolean;
}

/** The options checked, with every default filled in. */
export interface ResolvedOptions {
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  prefix: string;
  eventsMaxLen: number;
  connectTimeout: number;
  tls: boolean;
}

function positive(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new ConfigError(
      `redis ${what}: expected a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Check and fill in the options; a URL's parts are overridden by the explicit fields. */
export function resolveOptions(options: RedisOptions): ResolvedOptions {
  const fromUrl: RedisOptions = {};
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new ConfigError(`redis url: expected redis://[user:password@]host:port/db`);
    }
    if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
      throw new ConfigError(`redis url: expected a redis:// URL, got "${url.protocol}"`);
    }
    if (url.protocol === "rediss:") fromUrl.tls = true;
    if (url.hostname) fromUrl.host = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, "");
    if (url.port) fromUrl.port = Number(url.port);
    if (url.username) fromUrl.username = decodeURIComponent(url.username);
    if (url.password) fromUrl.password = decodeURIComponent(url.password);
    const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
    if (db !== "") {
      if (!/^\d+$/.test(db)) {
        throw new ConfigError(`redis url: expected a database index as the path, got "/${db}"`);
      }
      fromUrl.db = Number(db);
    }
    for (const [k, v] of url.searchParams) {
      switch (k) {
        case "prefix":
          fromUrl.prefix = v;
          break;
        case "events_max_len":
          fromUrl.eventsMaxLen = positive(v, k);
          break;
        case "connect_timeout":
          fromUrl.connectTimeout = positive(v, k);
          break;
        default:
          throw new ConfigError(
            `redis url: unknown parameter "${k}"; expected prefix, events_max_len or ` +
              `connect_timeout`,
          );
      }
    }
  }
  const o: RedisOptions = { ...fromUrl };
  for (const [k, v] of Object.entries(options)) {
    if (v !== undefined && k !== "url") (o as Record<string, unknown>)[k] = v;
  }
  const port = o.port ?? 6379;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`redis port: expected 1 to 65535, got ${JSON.stringify(port)}`);
  }
  const db = o.db ?? 0;
  if (!Number.isInteger(db) || db < 0) {
    throw new ConfigError(`redis db: expected an index from 0, got ${JSON.stringify(db)}`);
  }
  const prefix = o.prefix ?? "omniq:";
  if (typeof prefix !== "string" || prefix === "" || prefix.length > 200) {
    throw new ConfigError(
      `redis prefix: expected a non-empty string of at most 200 characters, got ${
        JSON.stringify(prefix)
      }`,
    );
  }
  const resolved: ResolvedOptions = {
    host: o.host ?? "localhost",
    port,
    db,
    prefix,
    eventsMaxLen: positive(o.eventsMaxLen ?? 100_000, "eventsMaxLen"),
    connectTimeout: positive(o.connectTimeout ?? 5, "connectTimeout"),
    tls: o.tls ?? false,
  };
  if (o.username !== undefined) resolved.username = o.username;
  if (o.password !== undefined) resolved.password = o.password;
  return resolved;
}

/** Where the engine connects, for messages: never the password. */
export function describeTarget(o: ResolvedOptions): string {
  const user = o.username ? `${o.username}@` : "";
  return `redis ${user}${o.host}:${o.port}/${o.db} (prefix ${o.prefix})`;
}

/** Whether an open failure is the configuration's (login, database), not the network's. */
export function isConfigFailure(text: string): boolean {
  return /WRONGPASS|NOAUTH|NOPERM|AUTH|DB index|invalid password|ACL/i.test(text);
}
