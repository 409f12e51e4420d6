/**
 * Google Cloud Storage as a {@linkcode ConditionalStorage} of the `file:` engine
 * (`gs://bucket/prefix?endpoint=…`): the URL and options of a bucket, the OAuth2 access
 * token of a service account (a JWT signed RS256 over `crypto.subtle` and exchanged at the
 * key's token URI, so no Google SDK is loaded), the JSON API calls the engine needs, and
 * their retries.
 *
 * Versions are generations. A conditional write is a media upload with
 * `ifGenerationMatch=<generation>` (`0`: only when absent), a conditional delete is a
 * DELETE with `ifGenerationMatch`; Cloud Storage checks both atomically, so of two writers
 * holding one generation exactly one writes the next.
 *
 * Emulator: none that installs here (npm or Debian) enforces `ifGenerationMatch`. The
 * Cloud Storage emulator of `firebase-tools` 15.37.0 serves the JSON API but ignores the
 * preconditions (two creates with `ifGenerationMatch=0` both succeed), so
 * tests/cloud/gcs_test.ts runs on it only what needs no precondition, and runs the whole
 * storage contract only on a server given in `OMNIQ_TEST_GCS_ENDPOINT` (e.g.
 * fake-gcs-server, which enforces them).
 *
 * Longer than the ~600-line guide on purpose: a store is one lazily loaded module (its
 * option checks, its token minting and its requests), so a program on another engine never
 * loads any of it, and half of the length is the key-by-key option errors.
 *
 * @example Open a bucket with a service-account key
 * ```ts ignore
 * import { GcsStorage } from "./gcs.ts";
 *
 * const key = JSON.parse(await Deno.readTextFile("key.json"));
 * const storage = new GcsStorage({ bucket: "my-bucket", prefix: "queue-1", credentials: key });
 * await storage.putIf("lock", new TextEncoder().encode("me"), null);
 * ```
 *
 * @module
 */

import { delay } from "../../../src/kit/async.ts";
import { fromBase64, toBase64 } from "../../../src/kit/encoding.ts";
import { ConfigError, OmniQError } from "../../../src/errors.ts";
import { checkKeys, nearest } from "../../../src/options.ts";
import type { ConditionalStorage, Storage, Versioned } from "../storage.ts";
import { concat, sameBytes, TRANSIENT, trimPrefix } from "./common.ts";

export type { ConditionalStorage, Storage, Versioned };

/** A service-account key, as the JSON key file of the Google Cloud console holds it. */
export interface GcsServiceAccount {
  /** The account's e-mail address: the JWT's issuer. */
  client_email: string;
  /** Its private key, PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  private_key: string;
  /** The key's id, sent as the JWT's `kid`. */
  private_key_id?: string;
  /**
   * Where the signed JWT is exchanged for an access token.
   *
   * @default {"https://oauth2.googleapis.com/token"}
   */
  token_uri?: string;
  /** The key file's other fields (`type`, `project_id`, …): accepted, unused. */
  type?: string;
  /** The project of the account (unused). */
  project_id?: string;
  /** The account's numeric id (unused). */
  client_id?: string;
  /** (Unused.) */
  auth_uri?: string;
  /** (Unused.) */
  auth_provider_x509_cert_url?: string;
  /** (Unused.) */
  client_x509_cert_url?: string;
  /** (Unused.) */
  universe_domain?: string;
}

/**
 * Options of a {@linkcode GcsStorage}: a bucket, a prefix in it, and exactly one way in
 * (`accessToken`, `credentials` or `anonymous: true`).
 */
export interface GcsStorageOptions {
  /** The bucket (Cloud Storage's naming rules: 3–63 lowercase letters, digits, `-`, `_`, `.`). */
  bucket: string;
  /**
   * The folder inside the bucket that holds the store (slashes at either end ignored).
   *
   * @default {""}
   */
  prefix?: string;
  /**
   * The JSON API's base URL; an emulator's `http://127.0.0.1:PORT`.
   *
   * @default {"https://storage.googleapis.com"}
   */
  endpoint?: string;
  /** A ready OAuth2 bearer token (it is not refreshed: for short runs and tests). */
  accessToken?: string;
  /** A service-account key: tokens are minted from it and renewed before they expire. */
  credentials?: GcsServiceAccount;
  /** Send no credentials (emulators, public buckets). */
  anonymous?: boolean;
  /**
   * How long one request may take (ms) before it is abandoned (and retried).
   *
   * @default {30000}
   */
  timeoutMs?: number;
}

/** The OAuth2 scope the tokens are asked for: read and write objects, nothing more. */
export const GCS_SCOPE = "https://www.googleapis.com/auth/devstorage.read_write";
const DEFAULT_ENDPOINT = "https://storage.googleapis.com";
const DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token";
const DEFAULT_TIMEOUT_MS = 30_000;
/** A token is renewed this long before Google says it expires. */
const TOKEN_MARGIN_S = 300;
const TOKEN_LIFETIME_S = 3_600;
const ATTEMPTS = 5;
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;
const APPEND_ATTEMPTS = 20;
const PAGE_SIZE = 1_000;
/** Statuses after which a write may have happened although its answer was an error. */
const MAYBE_APPLIED = new Set([500, 502, 503, 504]);

const OPTION_KEYS = [
  "bucket",
  "prefix",
  "endpoint",
  "accessToken",
  "credentials",
  "anonymous",
  "timeoutMs",
];
const CREDENTIAL_KEYS = [
  "client_email",
  "private_key",
  "private_key_id",
  "token_uri",
  "type",
  "project_id",
  "client_id",
  "auth_uri",
  "auth_provider_x509_cert_url",
  "client_x509_cert_url",
  "universe_domain",
];
const URL_PARAMS = ["endpoint", "anonymous"];
const BUCKET_RULE = "3 to 63 lowercase letters, digits, '-', '_' and '.' " +
  "(up to 222 with dots, 63 between dots), starting and ending with a letter or digit, " +
  'not an IP address, not starting with "goog" nor containing "google"';

/** Why `name` breaks Cloud Storage's bucket naming rules, or `undefined` when it keeps them. */
function bucketProblem(name: string): string | undefined {
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(name)) return "bad characters or ends";
  if (name.length < 3) return "too short";
  if (name.includes(".")) {
    if (name.length > 222) return "too long";
    if (name.split(".").some((part) => part.length === 0 || part.length > 63)) {
      return "a dot-separated part is empty or longer than 63";
    }
    if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return "an IP address";
  } else if (name.length > 63) return "too long";
  if (name.startsWith("goog")) return 'starts with "goog"';
  if (/g[o0]{2}gle/.test(name)) return 'contains "google"';
  return undefined;
}

function checkBucket(name: unknown, where: string): string {
  if (typeof name !== "string" || name === "") {
    throw new ConfigError(`${where}: expected a bucket name (${BUCKET_RULE}), got ${show(name)}`);
  }
  const problem = bucketProblem(name);
  if (problem) {
    throw new ConfigError(
      `${where}: ${JSON.stringify(name)} is not a valid bucket name (${problem}); ` +
        `expected ${BUCKET_RULE}`,
    );
  }
  return name;
}

function checkPrefix(prefix: unknown, where: string): string {
  if (typeof prefix !== "string") {
    throw new ConfigError(
      `${where}: expected a string (a folder in the bucket), got ${show(prefix)}`,
    );
  }
  const trimmed = trimPrefix(prefix);
  if (trimmed === undefined) {
    throw new ConfigError(
      `${where}: ${JSON.stringify(prefix)} has an empty, "." or ".." segment; ` +
        `expected a folder path such as "queues/main"`,
    );
  }
  if (/[\r\n]/.test(trimmed)) {
    throw new ConfigError(`${where}: ${JSON.stringify(prefix)} holds a line break`);
  }
  return trimmed;
}

function checkEndpoint(value: unknown, where: string): string {
  let url: URL | undefined;
  try {
    if (typeof value === "string") url = new URL(value);
  } catch {
    // Reported below.
  }
  if (
    !url || (url.protocol !== "http:" && url.protocol !== "https:") || url.search !== "" ||
    url.hash !== "" || url.username !== "" || url.password !== ""
  ) {
    throw new ConfigError(
      `${where}: expected an http(s) URL without query, fragment or credentials ` +
        `(e.g. "${DEFAULT_ENDPOINT}" or "http://127.0.0.1:4443"), got ${show(value)}`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

function checkBoolean(value: unknown, where: string): boolean {
  if (typeof value === "boolean") return value;
  if (value === "true" || value === "1" || value === "") return true;
  if (value === "false" || value === "0") return false;
  throw new ConfigError(`${where}: expected true or false, got ${show(value)}`);
}

function checkText(value: unknown, where: string, what: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(`${where}: expected ${what}, got ${show(value)}`);
  }
  return value;
}

function checkCredentials(value: unknown, where: string): GcsServiceAccount {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ConfigError(
      `${where}: expected a service-account key object (client_email, private_key), got ${
        show(value)
      }`,
    );
  }
  checkKeys(value, CREDENTIAL_KEYS, where);
  const key = value as Record<string, unknown>;
  checkText(key.client_email, `${where}.client_email`, "the service account's e-mail address");
  const pem = checkText(key.private_key, `${where}.private_key`, "a PKCS#8 PEM private key");
  if (!/-----BEGIN PRIVATE KEY-----/.test(pem.replaceAll("\\n", "\n"))) {
    throw new ConfigError(
      `${where}.private_key: expected a PKCS#8 PEM key ("-----BEGIN PRIVATE KEY-----", as in ` +
        `a service-account key file), got ${
          /BEGIN RSA PRIVATE KEY/.test(pem) ? "a PKCS#1 key" : "something else"
        }`,
    );
  }
  if (key.token_uri !== undefined) checkEndpoint(key.token_uri, `${where}.token_uri`);
  if (key.private_key_id !== undefined) {
    checkText(key.private_key_id, `${where}.private_key_id`, "the key's id");
  }
  return key as unknown as GcsServiceAccount;
}

function checkTimeout(value: unknown, where: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
    throw new ConfigError(
      `${where}: expected a positive integer of milliseconds, got ${show(value)}`,
    );
  }
  return value;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (value === undefined) return "nothing";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * The options a `gs://bucket/prefix?endpoint=…&anonymous=true` URL gives, without
 * credentials (those come from the config object or the environment).
 *
 * @param url The URL.
 * @returns Its bucket, prefix and, when given, endpoint and `anonymous`.
 * @throws {ConfigError} On another scheme, a bad bucket or prefix, an unknown query parameter
 *   (naming the nearest known one), a bad endpoint URL or a bad boolean.
 *
 * @example Parse a URL for an emulator
 * ```ts
 * import { parseGcsUrl } from "./gcs.ts";
 *
 * const options = parseGcsUrl("gs://omniq/queue-1?endpoint=http://127.0.0.1:4443&anonymous=true");
 * console.assert(options.bucket === "omniq" && options.prefix === "queue-1");
 * ```
 */
export function parseGcsUrl(url: string): GcsStorageOptions {
  const where = "gs URL";
  if (typeof url !== "string" || !url.startsWith("gs://")) {
    throw new ConfigError(`${where}: expected "gs://bucket/prefix", got ${show(url)}`);
  }
  const rest = url.slice("gs://".length);
  const q = rest.indexOf("?");
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : rest.slice(q + 1));
  const slash = path.indexOf("/");
  const bucket = checkBucket(slash < 0 ? path : path.slice(0, slash), `${where} bucket`);
  const options: GcsStorageOptions = { bucket };
  const prefix = checkPrefix(
    slash < 0 ? "" : decodeURIComponent(path.slice(slash + 1)),
    `${where} prefix`,
  );
  if (prefix !== "") options.prefix = prefix;
  for (const [name, value] of query) {
    if (!URL_PARAMS.includes(name)) {
      const near = nearest(name, URL_PARAMS);
      throw new ConfigError(
        `${where}: unknown parameter "${name}"${near ? ` (did you mean "${near}"?)` : ""}; ` +
          `expected one of ${URL_PARAMS.join(", ")}`,
      );
    }
    if (name === "endpoint") options.endpoint = checkEndpoint(value, `${where} endpoint`);
    else if (checkBoolean(value, `${where} anonymous`)) options.anonymous = true;
  }
  return options;
}

/** The bytes of a PKCS#8 PEM key (a key file's `\n` escapes, if left in, undone). */
function pemBytes(pem: string): Uint8Array {
  const body = pem.replaceAll("\\n", "\n")
    .replace(/-----BEGIN PRIVATE KEY-----|-----END PRIVATE KEY-----/g, "")
    .replace(/\s+/g, "");
  try {
    return fromBase64(body);
  } catch {
    throw new ConfigError("gcs credentials.private_key: the PEM body is not base64");
  }
}

function base64url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/=+$/, "").replaceAll("+", "-").replaceAll("/", "_");
}

/** What {@linkcode signServiceAccountJwt} signs for. */
export interface JwtClaimsOptions {
  /** The scope asked for. @default {GCS_SCOPE} */
  scope?: string;
  /** The time it is issued at, in seconds since the epoch. @default {now} */
  now?: number;
  /** How long it is valid, in seconds (Google accepts at most an hour). @default {3600} */
  lifetime?: number;
}

/**
 * The signed JWT (RS256) that a service account exchanges for an access token: issuer the
 * account, audience its token URI.
 *
 * @param credentials The service-account key.
 * @param options The scope, the issue time and the lifetime.
 * @returns The compact JWT (`header.claims.signature`, base64url).
 * @throws {ConfigError} When the private key cannot be imported.
 *
 * @example Sign an assertion
 * ```ts ignore
 * import { signServiceAccountJwt } from "./gcs.ts";
 *
 * const jwt = await signServiceAccountJwt(key);
 * ```
 */
export async function signServiceAccountJwt(
  credentials: GcsServiceAccount,
  options: JwtClaimsOptions = {},
): Promise<string> {
  const now = options.now ?? Math.floor(Date.now() / 1000);
  const header: Record<string, string> = { alg: "RS256", typ: "JWT" };
  if (credentials.private_key_id) header.kid = credentials.private_key_id;
  const claims = {
    iss: credentials.client_email,
    scope: options.scope ?? GCS_SCOPE,
    aud: credentials.token_uri ?? DEFAULT_TOKEN_URI,
    iat: now,
    exp: now + (options.lifetime ?? TOKEN_LIFETIME_S),
  };
  const enc = new TextEncoder();
  const unsigned = `${base64url(enc.encode(JSON.stringify(header)))}.${
    base64url(enc.encode(JSON.stringify(claims)))
  }`;
  let key: CryptoKey;
  try {
    key = await crypto.subtle.importKey(
      "pkcs8",
      pemBytes(credentials.private_key) as Uint8Array<ArrayBuffer>,
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError(
      `gcs credentials.private_key: not an RSA PKCS#8 key (${(error as Error).message})`,
    );
  }
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, enc.encode(unsigned));
  return `${unsigned}.${base64url(new Uint8Array(signature))}`;
}

/** An OAuth2 access token and when to stop using it (ms). */
interface Token {
  value: string;
  renewAt: number;
}

/** A response and whether an earlier attempt of the same request may have been applied. */
interface Answer {
  res: Response;
  retried: boolean;
}

/** An object's metadata, the fields read here. */
interface ObjectMeta {
  generation?: string;
  updated?: string;
}

/** The object name of a key, percent-encoded for a URL path (every reserved character). */
function pathName(name: string): string {
  return encodeURIComponent(name).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function backoff(attempt: number): Promise<void> {
  // Full jitter: racing writers that failed together do not retry together.
  return delay(Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt));
}

/**
 * A Cloud Storage bucket (or a folder of one) as the `file:` engine's storage: key
 * `tasks/abc.json` is object `<prefix>/tasks/abc.json`, versions are generations.
 */
export class GcsStorage implements ConditionalStorage {
  /** Conditional writes are checked atomically by Cloud Storage. */
  readonly conditional = true as const;
  /** The URL form, `gs://bucket/prefix` (with `?endpoint=` off Google); no credentials. */
  readonly location: string;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpoint: string;
  readonly #timeoutMs: number;
  readonly #accessToken?: string;
  readonly #credentials?: GcsServiceAccount;
  #token?: Promise<Token>;

  /**
   * Check the options key by key.
   *
   * @param options The bucket, prefix, endpoint and exactly one of `accessToken`,
   *   `credentials` or `anonymous: true`.
   * @throws {ConfigError} Naming the first bad or unknown option.
   */
  constructor(options: GcsStorageOptions) {
    const where = "gcs";
    if (typeof options !== "object" || options === null || Array.isArray(options)) {
      throw new ConfigError(`${where}: expected an options object, got ${show(options)}`);
    }
    checkKeys(options, OPTION_KEYS, where);
    this.#bucket = checkBucket(options.bucket, `${where}.bucket`);
    this.#prefix = options.prefix === undefined
      ? ""
      : checkPrefix(options.prefix, `${where}.prefix`);
    this.#endpoint = options.endpoint === undefined
      ? DEFAULT_ENDPOINT
      : checkEndpoint(options.endpoint, `${where}.endpoint`);
    this.#timeoutMs = options.timeoutMs === undefined
      ? DEFAULT_TIMEOUT_MS
      : checkTimeout(options.timeoutMs, `${where}.timeoutMs`);
    const anonymous = options.anonymous === undefined
      ? false
      : checkBoolean(options.anonymous, `${where}.anonymous`);
    const given = [
      options.accessToken !== undefined && "accessToken",
      options.credentials !== undefined && "credentials",
      anonymous && "anonymous",
    ].filter(Boolean);
    if (given.length !== 1) {
      throw new ConfigError(
        `${where}: expected exactly one of accessToken, credentials or anonymous: true, got ${
          given.length === 0 ? "none" : given.join(" and ")
        }`,
      );
    }
    if (options.accessToken !== undefined) {
      this.#accessToken = checkText(options.accessToken, `${where}.accessToken`, "an OAuth2 token");
    }
    if (options.credentials !== undefined) {
      this.#credentials = checkCredentials(options.credentials, `${where}.credentials`);
    }
    const path = this.#prefix === ""
      ? ""
      : `/${this.#prefix.split("/").map(encodeURIComponent).join("/")}`;
    this.location = `gs://${this.#bucket}${path}${
      this.#endpoint === DEFAULT_ENDPOINT ? "" : `?endpoint=${encodeURIComponent(this.#endpoint)}`
    }`;
  }

  #name(key: string): string {
    return this.#prefix === "" ? key : `${this.#prefix}/${key}`;
  }

  #objectUrl(key: string, query: Record<string, string> = {}): URL {
    const url = new URL(
      `${this.#endpoint}/storage/v1/b/${this.#bucket}/o/${pathName(this.#name(key))}`,
    );
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url;
  }

  #uploadUrl(key: string, ifGenerationMatch?: string): URL {
    const url = new URL(`${this.#endpoint}/upload/storage/v1/b/${this.#bucket}/o`);
    url.searchParams.set("uploadType", "media");
    url.searchParams.set("name", this.#name(key));
    if (ifGenerationMatch !== undefined) {
      url.searchParams.set("ifGenerationMatch", ifGenerationMatch);
    }
    return url;
  }

  /** The bearer token to send, minted (once for all callers) when the cached one is due. */
  async #authorization(): Promise<string | undefined> {
    if (this.#accessToken !== undefined) return `Bearer ${this.#accessToken}`;
    if (this.#credentials === undefined) return undefined;
    const cached = this.#token;
    if (cached) {
      const token = await cached.catch(() => undefined);
      if (token && Date.now() < token.renewAt) return `Bearer ${token.value}`;
      if (this.#token !== cached) return this.#authorization();
    }
    const minting = this.#mint(this.#credentials);
    this.#token = minting;
    // A failed mint is not cached: the next request tries again.
    minting.catch(() => {
      if (this.#token === minting) this.#token = undefined;
    });
    return `Bearer ${(await minting).value}`;
  }

  async #mint(credentials: GcsServiceAccount): Promise<Token> {
    const tokenUri = credentials.token_uri ?? DEFAULT_TOKEN_URI;
    const body = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:jwt-bearer",
      assertion: await signServiceAccountJwt(credentials),
    });
    let lastError = "";
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      let res: Response;
      try {
        res = await fetch(tokenUri, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (error) {
        lastError = (error as Error).message;
        continue;
      }
      const text = await res.text();
      if (TRANSIENT.has(res.status)) {
        lastError = `HTTP ${res.status}`;
        continue;
      }
      let json: {
        access_token?: unknown;
        expires_in?: unknown;
        error?: unknown;
        error_description?: unknown;
      } = {};
      try {
        json = JSON.parse(text);
      } catch {
        // Reported below with the status.
      }
      if (!res.ok || typeof json.access_token !== "string") {
        throw new OmniQError(
          `gcs: ${credentials.client_email} got no access token from ${tokenUri}: HTTP ${res.status}${
            json.error ? ` ${json.error}` : ""
          }${json.error_description ? `: ${json.error_description}` : ""}`,
        );
      }
      const lifetime = typeof json.expires_in === "number" ? json.expires_in : TOKEN_LIFETIME_S;
      return {
        value: json.access_token,
        renewAt: Date.now() + Math.max(0, lifetime - TOKEN_MARGIN_S) * 1000,
      };
    }
    throw new OmniQError(
      `gcs: ${credentials.client_email}: token endpoint ${tokenUri} unreachable (${lastError})`,
    );
  }

  /**
   * Send a request, retrying network errors and transient statuses with capped jittered
   * backoff (and a 401 once, with a fresh token). Every attempt has its own timeout.
   */
  async #send(
    op: string,
    key: string,
    method: string,
    url: URL,
    body?: Uint8Array,
  ): Promise<Answer> {
    let retried = false;
    let renewed = false;
    let lastError = "";
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(attempt);
      const headers = new Headers();
      const authorization = await this.#authorization();
      if (authorization) headers.set("authorization", authorization);
      if (body) headers.set("content-type", "application/octet-stream");
      let res: Response;
      try {
        res = await fetch(url, {
          method,
          headers,
          body: body as Uint8Array<ArrayBuffer> | undefined,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
      } catch (error) {
        // The request may have reached the store before the connection broke.
        lastError = (error as Error).message;
        retried = true;
        continue;
      }
      if (res.status === 401 && this.#credentials && !renewed) {
        await res.body?.cancel();
        renewed = true;
        this.#token = undefined;
        attempt--;
        continue;
      }
      if (TRANSIENT.has(res.status) && attempt < ATTEMPTS - 1) {
        lastError = await this.#describe(res);
        if (MAYBE_APPLIED.has(res.status)) retried = true;
        continue;
      }
      return { res, retried };
    }
    throw new OmniQError(
      `gcs: ${op} ${
        this.#name(key)
      } in bucket ${this.#bucket} failed after ${ATTEMPTS} attempts: ${lastError}`,
    );
  }

  /** `HTTP <status> <reason>: <message>` of an error answer (its body consumed). */
  async #describe(res: Response): Promise<string> {
    const text = await res.text().catch(() => "");
    let reason = "";
    let message = text.slice(0, 300);
    try {
      const json = JSON.parse(text) as {
        error?: { message?: string; errors?: { reason?: string }[] };
      };
      if (json.error) {
        reason = json.error.errors?.[0]?.reason ?? "";
        message = json.error.message ?? message;
      }
    } catch {
      // Not JSON: keep the text.
    }
    return `HTTP ${res.status}${reason ? ` ${reason}` : ""}${message ? `: ${message}` : ""}`;
  }

  async #fail(op: string, key: string, res: Response): Promise<never> {
    throw new OmniQError(
      `gcs: ${op} ${this.#name(key)} in bucket ${this.#bucket}: ${await this.#describe(res)}`,
    );
  }

  /** A 404's body read: a missing bucket throws (a missing object is simply absent). */
  async #absent(op: string, key: string, res: Response): Promise<undefined> {
    const text = await res.text().catch(() => "");
    if (/bucket does not exist|no such bucket/i.test(text)) {
      throw new OmniQError(
        `gcs: ${op} ${this.#name(key)}: bucket ${this.#bucket} does not exist (HTTP 404: ${
          text.slice(0, 200)
        })`,
      );
    }
    return undefined;
  }

  async #metadata(op: string, key: string): Promise<ObjectMeta | undefined> {
    const { res } = await this.#send(
      op,
      key,
      "GET",
      this.#objectUrl(key, { fields: "generation,updated" }),
    );
    if (res.status === 404) return await this.#absent(op, key, res);
    if (!res.ok) return await this.#fail(op, key, res);
    return await res.json() as ObjectMeta;
  }

  /** Names directly under a prefix: objects and sub-prefixes by last segment, every page. */
  async list(prefix: string): Promise<string[]> {
    const under = prefix.replace(/^\/+|\/+$/g, "");
    const base = under === "" ? this.#prefix : this.#name(under);
    const full = base === "" ? "" : `${base}/`;
    const names = new Set<string>();
    let pageToken: string | undefined;
    do {
      const url = new URL(`${this.#endpoint}/storage/v1/b/${this.#bucket}/o`);
      url.searchParams.set("prefix", full);
      url.searchParams.set("delimiter", "/");
      url.searchParams.set("maxResults", String(PAGE_SIZE));
      url.searchParams.set("fields", "items(name),prefixes,nextPageToken");
      if (pageToken) url.searchParams.set("pageToken", pageToken);
      const { res } = await this.#send("list", prefix, "GET", url);
      if (!res.ok) return await this.#fail("list", prefix, res);
      const page = await res.json() as {
        items?: { name: string }[];
        prefixes?: string[];
        nextPageToken?: string;
      };
      for (const item of page.items ?? []) {
        const name = item.name.slice(full.length);
        if (name !== "" && !name.includes("/")) names.add(name);
      }
      for (const p of page.prefixes ?? []) {
        const name = p.slice(full.length).replace(/\/$/, "");
        if (name !== "") names.add(name);
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    return [...names];
  }

  /** The bytes at a key. */
  async read(key: string): Promise<Uint8Array | undefined> {
    return (await this.readVersioned(key))?.data;
  }

  /** The bytes at a key and their generation, from one download. */
  async readVersioned(key: string): Promise<Versioned | undefined> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      const { res } = await this.#send("read", key, "GET", this.#objectUrl(key, { alt: "media" }));
      if (res.status === 404) return await this.#absent("read", key, res);
      if (!res.ok) return await this.#fail("read", key, res);
      const data = new Uint8Array(await res.arrayBuffer());
      const version = res.headers.get("x-goog-generation");
      if (version) return { data, version };
      // A server without the header: read the generation, then exactly that generation's bytes
      // (a 404 means it was replaced meanwhile: start again).
      const meta = await this.#metadata("read", key);
      if (!meta?.generation) return undefined;
      const pinned = await this.#send(
        "read",
        key,
        "GET",
        this.#objectUrl(key, { alt: "media", generation: meta.generation }),
      );
      if (pinned.res.status === 404) {
        await pinned.res.body?.cancel();
        continue;
      }
      if (!pinned.res.ok) return await this.#fail("read", key, pinned.res);
      return { data: new Uint8Array(await pinned.res.arrayBuffer()), version: meta.generation };
    }
    throw new OmniQError(`gcs: read ${this.#name(key)}: it kept changing while being read`);
  }

  /** The generation of a key, from its metadata. */
  async versionOf(key: string): Promise<string | undefined> {
    return (await this.#metadata("versionOf", key))?.generation;
  }

  /** When a key was last written (its `updated` time). */
  async modified(key: string): Promise<number | undefined> {
    const meta = await this.#metadata("modified", key);
    if (!meta) return undefined;
    const at = Date.parse(meta.updated ?? "");
    if (Number.isNaN(at)) {
      throw new OmniQError(`gcs: modified ${this.#name(key)}: no "updated" time in its metadata`);
    }
    return at;
  }

  /** Replace a key (a media upload: readers see the old or the new object, never a part). */
  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    const { res } = await this.#send("write", key, "POST", this.#uploadUrl(key), data);
    if (!res.ok) return await this.#fail("write", key, res);
    await res.body?.cancel();
  }

  /** Create a key only when absent. */
  async createIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    return (await this.putIf(key, data, null)) !== undefined;
  }

  /** Write a key only on the expected generation (`null`: only when absent). */
  async putIf(key: string, data: Uint8Array, expected: string | null): Promise<string | undefined> {
    // A version that is no generation can match no object.
    if (expected !== null && !/^[1-9]\d*$/.test(expected)) return undefined;
    const { res, retried } = await this.#send(
      "putIf",
      key,
      "POST",
      this.#uploadUrl(key, expected ?? "0"),
      data,
    );
    if (res.ok) {
      const meta = await res.json() as ObjectMeta;
      if (!meta.generation) {
        throw new OmniQError(
          `gcs: putIf ${this.#name(key)}: the upload's answer has no generation`,
        );
      }
      return meta.generation;
    }
    if (res.status === 412 || (res.status === 404 && expected !== null)) {
      await res.body?.cancel();
      if (retried) {
        // The first attempt may have written and lost its answer: then the object holds
        // exactly these bytes, written by this call.
        const now = await this.readVersioned(key);
        if (now && sameBytes(now.data, data)) return now.version;
      }
      return undefined;
    }
    return await this.#fail("putIf", key, res);
  }

  /** Delete a key only on the expected generation. */
  async deleteIf(key: string, expected: string): Promise<boolean> {
    if (!/^[1-9]\d*$/.test(expected)) return false;
    const { res, retried } = await this.#send(
      "deleteIf",
      key,
      "DELETE",
      this.#objectUrl(key, { ifGenerationMatch: expected }),
    );
    await res.body?.cancel();
    if (res.ok) return true;
    // Gone after an attempt that may have applied: most likely that attempt deleted it. Saying
    // so keeps a rename from removing its copy too (a duplicate is recoverable, a loss is not).
    if (res.status === 404) return retried;
    if (res.status === 412) return false;
    return await this.#fail("deleteIf", key, res);
  }

  /** Copy, then delete the source on the generation copied (undoing the copy if that fails). */
  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    const source = await this.readVersioned(from);
    if (!source) return false;
    const copied = await this.putIf(to, source.data, null);
    if (copied === undefined) return false;
    if (await this.deleteIf(from, source.version)) return true;
    await this.deleteIf(to, copied);
    return false;
  }

  /**
   * Append bytes: read, then write on the generation read, again on a conflict (Cloud
   * Storage has no cheap append; compose would need a second object per append).
   */
  async append(key: string, data: Uint8Array): Promise<void> {
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      if (attempt > 0) await backoff(Math.min(attempt, 5));
      const current = await this.readVersioned(key);
      const next = current ? concat(current.data, data) : data;
      if (await this.putIf(key, next, current?.version ?? null) !== undefined) return;
    }
    throw new OmniQError(
      `gcs: append ${
        this.#name(key)
      }: ${APPEND_ATTEMPTS} conflicting writes in a row (one writer per key expected)`,
    );
  }

  /** Rewrite the same bytes on their generation, so `updated` moves; false when absent. */
  async touch(key: string): Promise<boolean> {
    const current = await this.readVersioned(key);
    if (!current) return false;
    // Refused only when another write came between: that write moved the time already.
    await this.putIf(key, current.data, current.version);
    return true;
  }

  /** Delete a key; whether it existed. */
  async delete(key: string): Promise<boolean> {
    const { res, retried } = await this.#send("delete", key, "DELETE", this.#objectUrl(key));
    await res.body?.cancel();
    if (res.ok) return true;
    if (res.status === 404) return retried;
    return await this.#fail("delete", key, res);
  }

  /** Nothing to release: requests hold no connection of their own. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
