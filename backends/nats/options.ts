// The `nats:` engine's options: the `nats://` URL and the option object, checked with clear
// errors, and the names of the stream and buckets they lead to.

import { ConfigError } from "../../src/errors.ts";

/** How to reach the server and name the store: the object form of a `nats://` URL. */
export interface NatsOptions {
  /** Server addresses (`host:port` or `nats://host:port`). @default {["127.0.0.1:4222"]} */
  servers?: string | string[];
  /** A token, if the server wants one. */
  token?: string;
  /** A user name, if the server wants one. */
  user?: string;
  /** That user's password. */
  pass?: string;
  /** A prefix of every stream and bucket name (`<prefix>_OMNIQ_TASKS` …), to isolate stores. */
  prefix?: string;
  /** The event stream's name. @default {"OMNIQ_EVENTS"} */
  stream?: string;
  /** The task records bucket's name. @default {"OMNIQ_TASKS"} */
  bucket?: string;
  /** The results bucket's name. @default {"OMNIQ_RESULTS"} */
  resultsBucket?: string;
  /** How long the first connection may take, in ms. @default {5000} */
  timeout?: number;
}

/** The options checked, with every name prefixed and every default filled in. */
export type Resolved = Required<Omit<NatsOptions, "token" | "user" | "pass" | "servers">> & {
  servers: string[];
  token?: string;
  user?: string;
  pass?: string;
};

const NAME = /^[A-Za-z0-9_-]+$/;

/**
 * Parse a `nats://` URL into options.
 *
 * @param url `nats://[user:pass@|token@]host[:port][,host2…][?prefix=…&stream=…&bucket=…&results=…&timeout=…]`.
 * @returns The options it names.
 * @throws {ConfigError} When the URL is malformed or names an unknown option.
 *
 * @example
 * ```ts
 * import { parseNatsUrl } from "@omniq/omniq/nats";
 * const o = parseNatsUrl("nats://127.0.0.1:4222?prefix=t1");
 * console.assert(o.prefix === "t1");
 * ```
 */
export function parseNatsUrl(url: string): NatsOptions {
  const m = /^nats:\/\/([^/?#]*)\/?(?:\?([^#]*))?$/i.exec(url);
  if (!m) {
    throw new ConfigError(`nats: expected a URL like nats://host:4222, got "${redact(url)}"`);
  }
  let hosts = m[1];
  const out: NatsOptions = {};
  const at = hosts.lastIndexOf("@");
  if (at !== -1) {
    const cred = hosts.slice(0, at);
    hosts = hosts.slice(at + 1);
    const colon = cred.indexOf(":");
    if (colon === -1) out.token = decodeURIComponent(cred);
    else {
      out.user = decodeURIComponent(cred.slice(0, colon));
      out.pass = decodeURIComponent(cred.slice(colon + 1));
    }
  }
  const servers = hosts.split(",").filter((h) => h !== "");
  if (servers.length > 0) out.servers = servers;
  for (const [k, v] of new URLSearchParams(m[2] ?? "")) {
    switch (k) {
      case "prefix":
        out.prefix = v;
        break;
      case "stream":
        out.stream = v;
        break;
      case "bucket":
        out.bucket = v;
        break;
      case "results":
        out.resultsBucket = v;
        break;
      case "timeout": {
        const n = Number(v);
        if (!Number.isFinite(n) || n <= 0) {
          throw new ConfigError(`nats: timeout: expected milliseconds, got "${v}"`);
        }
        out.timeout = n;
        break;
      }
      default:
        throw new ConfigError(
          `nats: unknown URL option "${k}"; expected prefix, stream, bucket, results or timeout`,
        );
    }
  }
  return out;
}

function redact(url: string): string {
  return url.replace(/^(nats:\/\/)([^@/?#]*)@/i, "$1***@");
}

/** Check the options and fill in the names and defaults. */
export function resolve(options: NatsOptions): Resolved {
  const servers = options.servers === undefined
    ? ["127.0.0.1:4222"]
    : Array.isArray(options.servers)
    ? options.servers
    : [options.servers];
  if (servers.length === 0 || servers.some((s) => typeof s !== "string" || s === "")) {
    throw new ConfigError("nats: servers: expected host:port strings");
  }
  const prefix = options.prefix ?? "";
  const name = (key: string, value: string | undefined, fallback: string): string => {
    const base = value ?? fallback;
    const full = prefix === "" ? base : `${prefix}_${base}`;
    if (!NAME.test(full)) {
      throw new ConfigError(
        `nats: ${key}: expected letters, digits, "_" and "-" only, got "${full}"`,
      );
    }
    return full;
  };
  return {
    servers,
    token: options.token,
    user: options.user,
    pass: options.pass,
    prefix,
    stream: name("stream", options.stream, "OMNIQ_EVENTS"),
    bucket: name("bucket", options.bucket, "OMNIQ_TASKS"),
    resultsBucket: name("resultsBucket", options.resultsBucket, "OMNIQ_RESULTS"),
    timeout: options.timeout ?? 5_000,
  };
}
