/**
 * The `s3://` store of the `file:` engine: {@linkcode S3Storage}, a
 * {@linkcode ConditionalStorage} over the S3 REST API (Amazon S3 or an S3-compatible
 * server), every request signed with SigV4 by `aws4fetch` over `fetch`; and
 * {@linkcode parseS3Url}, the URL form `s3://bucket/prefix?endpoint=…&region=…&path_style=…`.
 *
 * What the engine relies on, and how S3 gives it:
 * - versions are ETags; a conditional put sends `If-None-Match: *` (only when absent) or
 *   `If-Match: <etag>`, and S3 answers 412 when the precondition fails. The ETag goes out
 *   bare, without its quotes: Ceph's RADOS Gateway compares the header byte for byte with
 *   its stored, unquoted ETag (a quoted one never matches there), and AWS takes either form.
 * - a single PUT's ETag is the MD5 of its bytes, so writing the same bytes again gives the
 *   same version: a writer that fences on a version must put something unique in the blob
 *   (the lock does: its token and counter).
 * - a conditional delete sends `If-Match` too, which AWS enforces; a server that ignores it
 *   (the RADOS Gateway 16 the tests run on does) is covered by a HEAD comparison just before,
 *   which narrows the race to the time between the two requests but does not close it there.
 *   `renameIfAbsent` therefore fences its source with a claim blob made only when absent, so
 *   of two racing renames of one version exactly one moves it on any S3 with conditional puts.
 *
 * Tested on Ceph RADOS Gateway 16.2.15 (Debian's `radosgw`, over a one-OSD memstore cluster
 * started by `tests/cloud/s3_server.ts`), which enforces `If-None-Match: *` and `If-Match`
 * on PutObject atomically and ignores `If-Match` on DeleteObject.
 *
 * Longer than the house's ~600 lines because it is one adapter behind one lazy import: the
 * option and URL checks, the REST calls and their retries are only ever loaded together, by
 * `s3://` alone (as `azure.ts` and `gcs.ts` are).
 *
 * @module
 */

import { AwsClient } from "aws4fetch";
import { ConfigError, OmniQError } from "../../../src/errors.ts";
import { checkKeys, nearest } from "../../../src/options.ts";
import { delay } from "../../../src/kit/async.ts";
import type { ConditionalStorage, Storage, Versioned } from "../storage.ts";
import { type Call, concat, type Reply, sameBytes, TRANSIENT, trimPrefix } from "./common.ts";

export type { ConditionalStorage, Storage, Versioned };

/** Where and how to reach one bucket (and prefix) of S3 or an S3-compatible server. */
export interface S3StorageOptions {
  /** The bucket's name (S3's naming rules: 3–63 lowercase letters, digits, dots, hyphens). */
  bucket: string;
  /** The key prefix everything lives under, e.g. `queues/main` (no `..`, no empty segment). */
  prefix?: string;
  /**
   * The service's URL, e.g. `http://127.0.0.1:9000` for an S3-compatible server.
   * @default {`https://s3.<region>.amazonaws.com`}
   */
  endpoint?: string;
  /**
   * The region requests are signed for.
   * @default {"us-east-1"}
   */
  region?: string;
  /**
   * Address the bucket in the path (`endpoint/bucket/key`) rather than in the host name
   * (`bucket.endpoint/key`).
   * @default {true when an endpoint is given, else false}
   */
  pathStyle?: boolean;
  /** The access key id (required by the constructor; never part of the URL form). */
  accessKeyId?: string;
  /** The secret access key (required by the constructor; never part of the URL form). */
  secretAccessKey?: string;
  /** A session token, for temporary credentials. */
  sessionToken?: string;
  /**
   * How long one request may take, in milliseconds, before it is abandoned (and retried).
   * @default {30000}
   */
  timeoutMs?: number;
}

const OPTION_KEYS = [
  "bucket",
  "prefix",
  "endpoint",
  "region",
  "pathStyle",
  "accessKeyId",
  "secretAccessKey",
  "sessionToken",
  "timeoutMs",
];
const URL_PARAMS = ["endpoint", "region", "path_style"];
const DEFAULT_REGION = "us-east-1";
const DEFAULT_TIMEOUT_MS = 30_000;
const ATTEMPTS = 4;
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;
const APPEND_ATTEMPTS = 50;
// A rename claim older than this was left by a renamer that died: it no longer fences.
const CLAIM_STALE_MS = 60_000;
const CLAIMS = ".omniq-claims";
// 409 ConditionalRequestConflict: AWS's answer while another conditional write of the key
// is in flight; trying again gives the real outcome.
const EMPTY = new Uint8Array(0);

const BUCKET_RULE = "3 to 63 lowercase letters, digits, dots and hyphens, " +
  "starting and ending with a letter or digit";

function show(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : String(value);
}

function checkBucket(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") {
    throw new ConfigError(`${where}: expected a bucket name (${BUCKET_RULE}), got ${show(value)}`);
  }
  const bad = value.length < 3 || value.length > 63 ||
    !/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/.test(value) || /\.\.|\.-|-\./.test(value) ||
    /^\d+\.\d+\.\d+\.\d+$/.test(value) || /^(xn--|sthree-)/.test(value) ||
    /(-s3alias|--ol-s3)$/.test(value);
  if (bad) {
    throw new ConfigError(`${where}: invalid bucket name "${value}": expected ${BUCKET_RULE}`);
  }
  return value;
}

function checkPrefix(value: unknown, where: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(`${where}: expected a key prefix (a string), got ${show(value)}`);
  }
  const trimmed = trimPrefix(value);
  if (trimmed === undefined) {
    throw new ConfigError(
      `${where}: "${value}" has an empty, "." or ".." segment; expected names joined by "/"`,
    );
  }
  return trimmed;
}

function checkEndpoint(value: unknown, where: string): string {
  if (typeof value !== "string") {
    throw new ConfigError(`${where}: expected an http or https URL, got ${show(value)}`);
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${where}: expected an http or https URL, got "${value}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`${where}: expected an http or https URL, got "${value}"`);
  }
  if (url.username || url.password) {
    throw new ConfigError(`${where}: credentials do not belong in the endpoint URL`);
  }
  if (url.pathname !== "/" || url.search || url.hash) {
    throw new ConfigError(
      `${where}: expected a URL with no path, query or fragment (e.g. http://127.0.0.1:9000), got "${value}"`,
    );
  }
  return url.origin;
}

function checkRegion(value: unknown, where: string): string {
  if (typeof value !== "string" || !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(value)) {
    throw new ConfigError(
      `${where}: expected a region name such as "eu-west-1", got ${show(value)}`,
    );
  }
  return value;
}

function checkBoolean(value: unknown, where: string): boolean {
  if (typeof value !== "boolean") {
    throw new ConfigError(`${where}: expected true or false, got ${show(value)}`);
  }
  return value;
}

function checkSecret(value: unknown, where: string): string {
  if (typeof value !== "string" || value === "") {
    throw new ConfigError(`${where}: expected a non-empty string`);
  }
  return value;
}

function checkTimeout(value: unknown, where: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new ConfigError(
      `${where}: expected a positive integer (milliseconds), got ${show(value)}`,
    );
  }
  return value;
}

/**
 * Read the URL form of an S3 store into options (without credentials, which never belong
 * in a URL): `s3://bucket/prefix` with the optional parameters `endpoint`, `region` and
 * `path_style` (`true` or `false`).
 *
 * @param url The URL, e.g. `s3://my-bucket/queues/main?region=eu-west-1`.
 * @returns The options it names.
 * @throws {ConfigError} When the bucket name, prefix, a parameter or its value is wrong.
 *
 * @example Read an URL for an S3-compatible server
 * ```ts
 * import { parseS3Url } from "./s3.ts";
 *
 * const options = parseS3Url("s3://tasks/prod?endpoint=http://127.0.0.1:9000");
 * console.assert(options.bucket === "tasks" && options.prefix === "prod");
 * ```
 */
export function parseS3Url(url: string): S3StorageOptions {
  if (typeof url !== "string" || !url.startsWith("s3://")) {
    throw new ConfigError(`s3: expected a URL s3://bucket/prefix, got ${show(url)}`);
  }
  const where = `s3 URL ${url}`;
  let rest = url.slice("s3://".length);
  if (rest.includes("#")) throw new ConfigError(`${where}: unexpected fragment "#…"`);
  let query = "";
  const q = rest.indexOf("?");
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  if (authority.includes("@") || authority.includes(":")) {
    throw new ConfigError(
      `${where}: credentials do not belong in the URL; give accessKeyId and secretAccessKey ` +
        `in the options or the environment`,
    );
  }
  const options: S3StorageOptions = { bucket: checkBucket(authority, `${where}: bucket`) };
  if (slash >= 0) {
    let path: string;
    try {
      path = decodeURIComponent(rest.slice(slash + 1));
    } catch {
      throw new ConfigError(`${where}: prefix "${rest.slice(slash + 1)}": bad percent-encoding`);
    }
    const prefix = checkPrefix(path, `${where}: prefix`);
    if (prefix) options.prefix = prefix;
  }
  const seen = new Set<string>();
  for (const [name, value] of new URLSearchParams(query)) {
    if (!URL_PARAMS.includes(name)) {
      const near = nearest(name, URL_PARAMS);
      throw new ConfigError(
        `${where}: unknown parameter "${name}"${near ? ` (did you mean "${near}"?)` : ""}; ` +
          `expected one of ${URL_PARAMS.join(", ")}`,
      );
    }
    if (seen.has(name)) throw new ConfigError(`${where}: parameter "${name}" given twice`);
    seen.add(name);
    if (name === "endpoint") options.endpoint = checkEndpoint(value, `${where}: endpoint`);
    else if (name === "region") options.region = checkRegion(value, `${where}: region`);
    else if (value === "true" || value === "false") options.pathStyle = value === "true";
    else {
      throw new ConfigError(`${where}: path_style: expected true or false, got "${value}"`);
    }
  }
  return options;
}

/** RFC 3986 percent-encoding, the form SigV4 signs (encodeURIComponent leaves `!'()*`). */
function rfc3986(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function bareTag(etag: string | null): string | undefined {
  if (etag === null) return undefined;
  return etag.replace(/^W\//, "").replace(/^"|"$/g, "");
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

function xmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (name.startsWith("#x")) return String.fromCodePoint(parseInt(name.slice(2), 16));
    if (name.startsWith("#")) return String.fromCodePoint(parseInt(name.slice(1), 10));
    return ENTITIES[name] ?? whole;
  });
}

/** The text of the first `<name>` element (S3's answers are flat enough for this). */
function xmlField(xml: string, name: string): string | undefined {
  const m = xml.match(new RegExp(`<${name}>([^<]*)</${name}>`));
  return m ? xmlText(m[1]) : undefined;
}

interface Head {
  version: string;
  modified: number | undefined;
}

/**
 * {@linkcode ConditionalStorage} over one S3 bucket (and key prefix): the storage of the
 * `file:` engine for `s3://` URLs. Keys map to objects `<prefix>/<key>`; transient failures
 * (network errors, timeouts, 429, 500, 502, 503, 504) are retried with capped, jittered
 * backoff; any other failure throws an {@linkcode OmniQError} naming the store, the key, the
 * HTTP status and S3's error code and message.
 *
 * @example Open a bucket on an S3-compatible server
 * ```ts ignore
 * import { parseS3Url, S3Storage } from "./s3.ts";
 *
 * const storage = new S3Storage({
 *   ...parseS3Url("s3://tasks/prod?endpoint=http://127.0.0.1:9000"),
 *   accessKeyId: "AKIA…",
 *   secretAccessKey: "…",
 * });
 * await storage.writeAtomic("hello.txt", new TextEncoder().encode("hi"));
 * ```
 */
export class S3Storage implements ConditionalStorage {
  /** Conditional puts and deletes are made at the store. */
  readonly conditional = true as const;
  /** The store's URL form, e.g. `s3://bucket/prefix` (never a credential). */
  readonly location: string;
  readonly #client: AwsClient;
  readonly #base: string;
  readonly #root: string;
  readonly #region: string;
  readonly #timeoutMs: number;

  /**
   * Check the options key by key and prepare the signer; nothing is requested yet.
   *
   * @param options The bucket, prefix, endpoint and credentials.
   * @throws {ConfigError} When an option is unknown, missing or invalid.
   */
  constructor(options: S3StorageOptions) {
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new ConfigError(`s3: expected an options object, got ${show(options)}`);
    }
    checkKeys(options, OPTION_KEYS, "s3");
    const bucket = checkBucket(options.bucket, "s3.bucket");
    this.#root = checkPrefix(options.prefix ?? "", "s3.prefix");
    this.#region = options.region === undefined
      ? DEFAULT_REGION
      : checkRegion(options.region, "s3.region");
    const endpoint = options.endpoint === undefined
      ? undefined
      : checkEndpoint(options.endpoint, "s3.endpoint");
    const pathStyle = options.pathStyle === undefined
      ? endpoint !== undefined
      : checkBoolean(options.pathStyle, "s3.pathStyle");
    const accessKeyId = checkSecret(options.accessKeyId, "s3.accessKeyId");
    const secretAccessKey = checkSecret(options.secretAccessKey, "s3.secretAccessKey");
    const sessionToken = options.sessionToken === undefined
      ? undefined
      : checkSecret(options.sessionToken, "s3.sessionToken");
    this.#timeoutMs = options.timeoutMs === undefined
      ? DEFAULT_TIMEOUT_MS
      : checkTimeout(options.timeoutMs, "s3.timeoutMs");
    const service = new URL(endpoint ?? `https://s3.${this.#region}.amazonaws.com`);
    this.#base = pathStyle
      ? `${service.origin}/${bucket}`
      : `${service.protocol}//${bucket}.${service.host}`;
    const params = [
      ...(endpoint ? [`endpoint=${endpoint}`] : []),
      ...(options.region !== undefined ? [`region=${this.#region}`] : []),
      ...(options.pathStyle !== undefined ? [`path_style=${pathStyle}`] : []),
    ];
    this.location = `s3://${bucket}${this.#root ? `/${this.#root}` : ""}` +
      (params.length ? `?${params.join("&")}` : "");
    // aws4fetch's own retries are off: this class retries, and knows which answers are safe
    // to take as done after a retry.
    this.#client = new AwsClient({
      accessKeyId,
      secretAccessKey,
      sessionToken,
      service: "s3",
      region: this.#region,
      retries: 0,
    });
  }

  #object(key: string): string {
    if (!this.#root) return key;
    return key === "" ? this.#root : `${this.#root}/${key}`;
  }

  #url(call: Call): string {
    const path = call.key === undefined
      ? "/"
      : `/${this.#object(call.key).split("/").map(rfc3986).join("/")}`;
    const query = Object.entries(call.query ?? {}).map(([k, v]) => `${rfc3986(k)}=${rfc3986(v)}`);
    const url = this.#base.endsWith("/") || call.key !== undefined || !this.#base.includes("/", 8)
      ? `${this.#base}${path}`
      : this.#base;
    return query.length ? `${url}?${query.join("&")}` : url;
  }

  #describe(call: Call): string {
    return `${call.method} ${call.key === undefined ? "(bucket)" : call.key}`;
  }

  /** One request, retried on transient failures; any answer that is not transient returns. */
  async #send(call: Call): Promise<Reply> {
    const url = this.#url(call);
    for (let attempt = 1;; attempt++) {
      let problem: string;
      let cause: unknown;
      try {
        const request = await this.#client.sign(url, {
          method: call.method,
          headers: call.headers,
          body: call.method === "PUT" ? (call.body ?? EMPTY) as Uint8Array<ArrayBuffer> : undefined,
        });
        const response = await fetch(request, { signal: AbortSignal.timeout(this.#timeoutMs) });
        const body = call.method === "HEAD"
          ? (await response.body?.cancel(), EMPTY)
          : new Uint8Array(await response.arrayBuffer());
        const conflict = response.status === 409 &&
          xmlField(new TextDecoder().decode(body), "Code") === "ConditionalRequestConflict";
        if ((!TRANSIENT.has(response.status) && !conflict) || attempt >= ATTEMPTS) {
          return { status: response.status, headers: response.headers, body, retried: attempt > 1 };
        }
        problem = `HTTP ${response.status}`;
      } catch (error) {
        cause = error;
        problem = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
        if (attempt >= ATTEMPTS) {
          throw new OmniQError(
            `s3 ${this.location}: ${
              this.#describe(call)
            } failed after ${attempt} attempts: ${problem}`,
            { cause },
          );
        }
      }
      const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (attempt - 1));
      await delay(cap / 2 + Math.random() * cap / 2);
    }
  }

  /** The error for an answer this class does not expect. */
  #failure(call: Call, reply: Reply): OmniQError {
    const xml = new TextDecoder().decode(reply.body);
    const code = xmlField(xml, "Code");
    const message = xmlField(xml, "Message");
    const detail = [code, message].filter(Boolean).join(": ") || "(no error body)";
    return new OmniQError(
      `s3 ${this.location}: ${this.#describe(call)} failed: HTTP ${reply.status} ${detail}`,
    );
  }

  /** A 404 that means "no such key", not a missing bucket (which is an error). */
  #absent(call: Call, reply: Reply): boolean {
    if (reply.status !== 404) return false;
    // A HEAD answer has no body to tell the two apart; a missing bucket shows on the next
    // GET, PUT or list, which do have one.
    if (call.method === "HEAD") return true;
    const code = xmlField(new TextDecoder().decode(reply.body), "Code");
    if (code === "NoSuchBucket") throw this.#failure(call, reply);
    return true;
  }

  async #head(key: string): Promise<Head | undefined> {
    const call: Call = { method: "HEAD", key };
    const reply = await this.#send(call);
    if (this.#absent(call, reply)) return undefined;
    if (reply.status !== 200) throw this.#failure(call, reply);
    const modified = reply.headers.get("last-modified");
    return {
      version: this.#version(call, reply),
      modified: modified === null ? undefined : Date.parse(modified),
    };
  }

  #version(call: Call, reply: Reply): string {
    const version = bareTag(reply.headers.get("etag"));
    if (!version) {
      throw new OmniQError(
        `s3 ${this.location}: ${this.#describe(call)}: the answer has no ETag, which this ` +
          `storage needs as the object's version`,
      );
    }
    return version;
  }

  /**
   * Create the bucket (for tests and first-time setup; the engine never calls it).
   *
   * @returns `true` when this call created it, `false` when it already existed and is yours.
   * @throws {OmniQError} When S3 refuses, e.g. the name is taken by another account.
   */
  async createBucket(): Promise<boolean> {
    const body = this.#region === DEFAULT_REGION ? EMPTY : new TextEncoder().encode(
      `<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<LocationConstraint>${this.#region}</LocationConstraint></CreateBucketConfiguration>`,
    );
    const call: Call = { method: "PUT", body };
    const reply = await this.#send(call);
    if (reply.status === 200) return true;
    const code = xmlField(new TextDecoder().decode(reply.body), "Code");
    if (reply.status === 409 && code === "BucketAlreadyOwnedByYou") return false;
    throw this.#failure(call, reply);
  }

  /** Names directly under `prefix/`: objects and common prefixes, every page of them. */
  async list(prefix: string): Promise<string[]> {
    const dir = this.#object(prefix);
    const under = dir === "" ? "" : `${dir}/`;
    const names = new Set<string>();
    let token: string | undefined;
    do {
      const query: Record<string, string> = { "list-type": "2", prefix: under, delimiter: "/" };
      if (token !== undefined) query["continuation-token"] = token;
      const call: Call = { method: "GET", query };
      const reply = await this.#send(call);
      if (reply.status !== 200) throw this.#failure(call, reply);
      const xml = new TextDecoder().decode(reply.body);
      for (const m of xml.matchAll(/<Contents>([\s\S]*?)<\/Contents>/g)) {
        const key = xmlField(m[1], "Key");
        if (key?.startsWith(under) && key.length > under.length) names.add(key.slice(under.length));
      }
      for (const m of xml.matchAll(/<CommonPrefixes>([\s\S]*?)<\/CommonPrefixes>/g)) {
        const sub = xmlField(m[1], "Prefix");
        const name = sub?.startsWith(under) ? sub.slice(under.length).replace(/\/$/, "") : "";
        if (name) names.add(name);
      }
      const truncated = xmlField(xml, "IsTruncated") === "true";
      token = truncated ? xmlField(xml, "NextContinuationToken") : undefined;
      if (truncated && !token) {
        throw new OmniQError(
          `s3 ${this.location}: listing "${prefix}" is truncated but has no continuation token`,
        );
      }
    } while (token !== undefined);
    return [...names];
  }

  /** The bytes at `key`, or `undefined` when absent. */
  async read(key: string): Promise<Uint8Array | undefined> {
    return (await this.readVersioned(key))?.data;
  }

  /** The bytes at `key` and their ETag, or `undefined` when absent. */
  async readVersioned(key: string): Promise<Versioned | undefined> {
    const call: Call = { method: "GET", key };
    const reply = await this.#send(call);
    if (this.#absent(call, reply)) return undefined;
    if (reply.status !== 200) throw this.#failure(call, reply);
    return { data: reply.body, version: this.#version(call, reply) };
  }

  /** The ETag of `key` (a HEAD request), or `undefined` when absent. */
  async versionOf(key: string): Promise<string | undefined> {
    return (await this.#head(key))?.version;
  }

  /** When `key` was last written (S3's Last-Modified, to the second), or `undefined`. */
  async modified(key: string): Promise<number | undefined> {
    return (await this.#head(key))?.modified;
  }

  /** Replace `key` with `data` (one PUT: readers see the old or the new object whole). */
  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    const call: Call = { method: "PUT", key, body: data };
    const reply = await this.#send(call);
    if (reply.status !== 200) throw this.#failure(call, reply);
  }

  /** Create `key` only when absent (`If-None-Match: *`); whether this call created it. */
  async createIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    return await this.putIf(key, data, null) !== undefined;
  }

  /**
   * Write `key` only when its ETag is `expected` (`null`: only when absent).
   *
   * @returns The new ETag, or `undefined` when the precondition failed.
   */
  async putIf(
    key: string,
    data: Uint8Array,
    expected: string | null,
  ): Promise<string | undefined> {
    const headers: Record<string, string> = expected === null
      ? { "if-none-match": "*" }
      : { "if-match": expected };
    const call: Call = { method: "PUT", key, headers, body: data };
    const reply = await this.#send(call);
    if (reply.status === 200) return this.#version(call, reply);
    const code = xmlField(new TextDecoder().decode(reply.body), "Code");
    // AWS answers an If-Match on an absent key with 404 NoSuchKey rather than 412.
    const refused = reply.status === 412 || reply.status === 409 ||
      (reply.status === 404 && expected !== null && code === "NoSuchKey");
    if (!refused) throw this.#failure(call, reply);
    if (reply.retried) {
      // The first attempt may have written and its answer been lost: then the refusal is
      // of our own write, and the object holds exactly our bytes.
      const now = await this.readVersioned(key);
      if (now && sameBytes(now.data, data)) return now.version;
    }
    return undefined;
  }

  /**
   * Delete `key` only when its ETag is `expected`; whether this call deleted it. The ETag is
   * compared by a HEAD first and sent as `If-Match` on the DELETE: atomic where S3 enforces
   * that header, a narrow race where the server ignores it (see the module's notes).
   */
  async deleteIf(key: string, expected: string): Promise<boolean> {
    const head = await this.#head(key);
    if (head?.version !== expected) return false;
    const call: Call = { method: "DELETE", key, headers: { "if-match": expected } };
    const reply = await this.#send(call);
    if (reply.status === 204 || reply.status === 200) return true;
    if (reply.status === 412 || this.#absent(call, reply)) return false;
    throw this.#failure(call, reply);
  }

  /**
   * Move `from` to `to` only when `from` exists and `to` does not; whether it moved. A claim
   * blob made only when absent fences the source's version first, so of racing renames of
   * one version exactly one goes on even where deletes are not conditional.
   */
  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    const source = await this.readVersioned(from);
    if (!source) return false;
    const claim = `${CLAIMS}/${rfc3986(from)}@${source.version}`;
    const claimed = await this.#claim(claim, to);
    if (!claimed) return false;
    try {
      const made = await this.putIf(to, source.data, null);
      if (made === undefined) return false;
      if (await this.deleteIf(from, source.version)) return true;
      // The source changed or went meanwhile: take our copy back.
      await this.deleteIf(to, made);
      return false;
    } finally {
      await this.deleteIf(claim, claimed).catch(() => {});
    }
  }

  /** Make a rename's claim; its version, or `undefined` when a live renamer holds it. */
  async #claim(claim: string, to: string): Promise<string | undefined> {
    const note = new TextEncoder().encode(to);
    const made = await this.putIf(claim, note, null);
    if (made !== undefined) return made;
    const held = await this.#head(claim);
    if (held?.modified === undefined || Date.now() - held.modified < CLAIM_STALE_MS) {
      return undefined;
    }
    // Left by a renamer that died: take it over on its version.
    return await this.putIf(claim, concat(note, new TextEncoder().encode("\n")), held.version);
  }

  /** Append `data` to `key` (read, then a put on the read version, again on a conflict). */
  async append(key: string, data: Uint8Array): Promise<void> {
    for (let attempt = 1; attempt <= APPEND_ATTEMPTS; attempt++) {
      const current = await this.readVersioned(key);
      const next = current ? concat(current.data, data) : data;
      if (await this.putIf(key, next, current?.version ?? null) !== undefined) return;
    }
    throw new OmniQError(
      `s3 ${this.location}: append to ${key} lost ${APPEND_ATTEMPTS} races to other writers`,
    );
  }

  /** Rewrite the same bytes on their version so the modified time moves; whether it exists. */
  async touch(key: string): Promise<boolean> {
    const current = await this.readVersioned(key);
    if (!current) return false;
    if (await this.putIf(key, current.data, current.version) !== undefined) return true;
    // Someone else wrote it in between: it was written now all the same, if it is still there.
    return await this.#head(key) !== undefined;
  }

  /** Delete `key`; whether it existed (S3's DELETE answers 204 either way, so HEAD first). */
  async delete(key: string): Promise<boolean> {
    if (await this.#head(key) === undefined) return false;
    const call: Call = { method: "DELETE", key };
    const reply = await this.#send(call);
    if (reply.status === 204 || reply.status === 200) return true;
    if (this.#absent(call, reply)) return false;
    throw this.#failure(call, reply);
  }

  /** Nothing to release: every request holds its connection only while it runs. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
