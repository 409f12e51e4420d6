/**
 * Azure Blob Storage as a {@linkcode ConditionalStorage} of the `file:` engine
 * (`az://container/prefix?account=…&endpoint=…`): the URL and options of a container, the
 * Shared Key signature of each request (written here over `crypto.subtle`, so no Azure SDK
 * is loaded), the REST calls the engine needs, and their retries.
 *
 * Versions are ETags. A conditional write is Put Blob with `If-None-Match: *` (create only)
 * or `If-Match: <etag>`, a conditional delete is Delete Blob with `If-Match`; Azure checks
 * both atomically, so of two writers holding one version exactly one writes the next.
 * Tested on Azurite 3.35.0 (npm `azurite`, blob service), which enforces them too
 * (tests/cloud/azure_test.ts).
 *
 * Longer than the house's ~600 lines because it is one adapter behind one lazy import: the
 * option and URL checks (a third of it), the Shared Key signature and the REST calls are
 * only ever loaded together, by `az://` alone.
 *
 * @example Open a container on Azurite
 * ```ts ignore
 * import { AzureStorage } from "./azure.ts";
 *
 * const storage = new AzureStorage({
 *   container: "omniq",
 *   prefix: "queue-1",
 *   account: "devstoreaccount1",
 *   accountKey: "<the account's base64 key>",
 *   endpoint: "http://127.0.0.1:10000/devstoreaccount1",
 * });
 * await storage.createContainer();
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
import { type Call, concat, type Reply, sameBytes, TRANSIENT, trimPrefix } from "./common.ts";

export type { ConditionalStorage, Storage, Versioned };

/** Options of an {@linkcode AzureStorage}: a container, a prefix in it, and one way in. */
export interface AzureStorageOptions {
  /** The container (3–63 lowercase letters, digits and single hyphens). */
  container: string;
  /**
   * The folder inside the container that holds the store (slashes at either end ignored).
   *
   * @default {""}
   */
  prefix?: string;
  /**
   * The storage account (3–24 lowercase letters and digits). Taken from the connection
   * string or the endpoint when not given.
   */
  account?: string;
  /** The account's key (base64), for Shared Key signatures. */
  accountKey?: string;
  /** A shared access signature (the query string, with or without its `?`). */
  sasToken?: string;
  /**
   * A connection string as the portal gives it: `DefaultEndpointsProtocol`, `AccountName`,
   * `AccountKey` or `SharedAccessSignature`, and `BlobEndpoint` or `EndpointSuffix`.
   */
  connectionString?: string;
  /**
   * The blob service's URL: `https://<account>.blob.core.windows.net` by default; for
   * Azurite `http://127.0.0.1:PORT/<account>`.
   */
  endpoint?: string;
  /**
   * How long one request may take (ms) before it is abandoned (and retried).
   *
   * @default {30000}
   */
  timeoutMs?: number;
}

/** The account key of a Shared Key signature. */
export interface SharedKeyCredentials {
  /** The storage account. */
  account: string;
  /** Its key, base64. */
  accountKey: string;
}

/** A request to sign with {@linkcode signSharedKey}. */
export interface SignableRequest {
  /** The HTTP method. */
  method: string;
  /** The full URL, query included. */
  url: URL;
  /** Its headers; `x-ms-date`, `x-ms-version` and `Authorization` are set here. */
  headers: Headers;
  /** The body's length in bytes (0 or absent: no body). */
  contentLength?: number;
}

const API_VERSION = "2023-11-03";
const DEFAULT_TIMEOUT_MS = 30_000;
const ATTEMPTS = 5;
const BACKOFF_BASE_MS = 100;
const BACKOFF_CAP_MS = 2_000;
const APPEND_ATTEMPTS = 20;
/** Statuses after which a write may have happened although its answer was an error. */
const MAYBE_APPLIED = new Set([500, 502, 503, 504]);

const OPTION_KEYS = [
  "container",
  "prefix",
  "account",
  "accountKey",
  "sasToken",
  "connectionString",
  "endpoint",
  "timeoutMs",
];
const URL_PARAMS = ["account", "endpoint"];
const CONNECTION_KEYS = [
  "DefaultEndpointsProtocol",
  "AccountName",
  "AccountKey",
  "BlobEndpoint",
  "SharedAccessSignature",
  "EndpointSuffix",
  // Endpoints of the account's other services: valid in a connection string, unused here.
  "QueueEndpoint",
  "TableEndpoint",
  "FileEndpoint",
];
const CONTAINER_RULE = "3 to 63 lowercase letters, digits and single hyphens, " +
  "starting and ending with a letter or digit";
const ACCOUNT_RULE = "3 to 24 lowercase letters and digits";

function validContainer(name: string): boolean {
  return /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/.test(name);
}

function validAccount(name: string): boolean {
  return /^[a-z0-9]{3,24}$/.test(name);
}

function checkContainer(name: unknown, where: string): string {
  if (typeof name !== "string" || name === "") {
    throw new ConfigError(
      `${where}: expected a container name (${CONTAINER_RULE}), got ${show(name)}`,
    );
  }
  if (!validContainer(name)) {
    throw new ConfigError(`${where}: invalid container name "${name}": expected ${CONTAINER_RULE}`);
  }
  return name;
}

function checkAccount(name: unknown, where: string): string {
  if (typeof name !== "string" || !validAccount(name)) {
    throw new ConfigError(`${where}: invalid account name ${show(name)}: expected ${ACCOUNT_RULE}`);
  }
  return name;
}

/** The prefix trimmed of slashes; `..`, `.` and empty segments are refused. */
function checkPrefix(prefix: unknown, where: string): string {
  if (typeof prefix !== "string") {
    throw new ConfigError(
      `${where}: expected a string (a folder in the container), got ${show(prefix)}`,
    );
  }
  const trimmed = trimPrefix(prefix);
  if (trimmed === undefined) {
    throw new ConfigError(
      `${where}: invalid prefix "${prefix}": expected folder names separated by single ` +
        `slashes, without "." or ".." segments`,
    );
  }
  return trimmed;
}

/** The endpoint without its trailing slash; only http(s), no query, fragment or user. */
function checkEndpoint(endpoint: unknown, where: string): string {
  let url: URL;
  try {
    if (typeof endpoint !== "string") throw new TypeError();
    url = new URL(endpoint);
  } catch {
    throw new ConfigError(
      `${where}: expected the blob service's URL, e.g. https://ACCOUNT.blob.core.windows.net ` +
        `or http://127.0.0.1:10000/ACCOUNT, got ${show(endpoint)}`,
    );
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new ConfigError(`${where}: expected an http or https URL, got "${endpoint}"`);
  }
  if (url.search || url.hash || url.username || url.password) {
    throw new ConfigError(
      `${where}: expected a URL without a query, fragment or user (credentials belong in ` +
        `accountKey, sasToken or connectionString), got "${redact(url)}"`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

function redact(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}${url.search ? "?…" : ""}`;
}

function show(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : value === undefined ? "nothing" : typeof value;
}

/** The account an endpoint names: its first host label, or (Azurite) its first path segment. */
function accountOfEndpoint(endpoint: string): string | undefined {
  const url = new URL(endpoint);
  const host = /^([a-z0-9]+)\.blob\./.exec(url.hostname);
  if (host) return host[1];
  const segment = url.pathname.split("/").find((s) => s !== "");
  return segment && validAccount(segment) ? segment : undefined;
}

/**
 * The options an `az://container/prefix?account=…&endpoint=…` URL names (never
 * credentials: those come from the config or the environment).
 *
 * @param url The URL.
 * @returns The options, without credentials.
 * @throws {ConfigError} A bad container name, prefix, parameter or endpoint, or a URL that
 *   carries credentials.
 *
 * @example Azurite's path-style endpoint
 * ```ts ignore
 * parseAzureUrl("az://omniq/q1?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1");
 * // { container: "omniq", prefix: "q1", account: "devstoreaccount1", endpoint: "http://127.0.0.1:10000/devstoreaccount1" }
 * ```
 */
export function parseAzureUrl(url: string): AzureStorageOptions {
  if (typeof url !== "string" || !/^az:\/\//i.test(url)) {
    throw new ConfigError(
      `az: expected a URL like az://container/prefix?account=NAME, got ${show(url)}`,
    );
  }
  const hash = url.indexOf("#");
  if (hash >= 0) throw new ConfigError(`az: unexpected fragment "${url.slice(hash)}" in ${url}`);
  const rest = url.slice(5);
  const q = rest.indexOf("?");
  const path = q < 0 ? rest : rest.slice(0, q);
  const query = q < 0 ? "" : rest.slice(q + 1);
  const slash = path.indexOf("/");
  const container = slash < 0 ? path : path.slice(0, slash);
  if (container.includes("@")) {
    throw new ConfigError(
      `az: a URL carries no credentials (give accountKey, sasToken or connectionString in ` +
        `the config, or AZURE_STORAGE_* in the environment): az://${
          container.slice(container.lastIndexOf("@") + 1)
        }/…`,
    );
  }
  const out: AzureStorageOptions = { container: checkContainer(container, "az: container") };
  if (slash >= 0) {
    let prefix: string;
    try {
      prefix = path.slice(slash + 1).split("/").map(decodeURIComponent).join("/");
    } catch {
      throw new ConfigError(`az: prefix "${path.slice(slash + 1)}": bad percent-encoding`);
    }
    const checked = checkPrefix(prefix, "az: prefix");
    if (checked) out.prefix = checked;
  }
  for (const [name, value] of new URLSearchParams(query)) {
    if (name === "account") out.account = checkAccount(value, "az: account");
    else if (name === "endpoint") out.endpoint = checkEndpoint(value, "az: endpoint");
    else {
      const near = nearest(name, URL_PARAMS);
      throw new ConfigError(
        `az: unknown parameter "${name}"${near ? ` (did you mean "${near}"?)` : ""}; ` +
          `expected one of ${URL_PARAMS.join(", ")}`,
      );
    }
  }
  return out;
}

interface ConnectionString {
  protocol?: string;
  account?: string;
  accountKey?: string;
  sas?: string;
  blobEndpoint?: string;
  suffix?: string;
}

function parseConnectionString(text: unknown): ConnectionString {
  const where = "azure.connectionString";
  if (typeof text !== "string" || text.trim() === "") {
    throw new ConfigError(`${where}: expected "AccountName=…;AccountKey=…;…", got ${show(text)}`);
  }
  const fields = new Map<string, string>();
  for (const part of text.split(";")) {
    if (part.trim() === "") continue;
    const eq = part.indexOf("=");
    const name = (eq < 0 ? part : part.slice(0, eq)).trim();
    if (eq < 0) throw new ConfigError(`${where}: "${name}" has no value (expected Name=value)`);
    const known = CONNECTION_KEYS.find((k) => k.toLowerCase() === name.toLowerCase());
    if (!known) {
      const near = nearest(name, CONNECTION_KEYS);
      throw new ConfigError(
        `${where}: unknown field "${name}"${near ? ` (did you mean "${near}"?)` : ""}; ` +
          `expected ${CONNECTION_KEYS.slice(0, 6).join(", ")}`,
      );
    }
    fields.set(known, part.slice(eq + 1).trim());
  }
  const protocol = fields.get("DefaultEndpointsProtocol");
  if (protocol !== undefined && protocol !== "https" && protocol !== "http") {
    throw new ConfigError(
      `${where}: DefaultEndpointsProtocol: expected https or http, got "${protocol}"`,
    );
  }
  const account = fields.get("AccountName");
  return {
    protocol,
    account: account === undefined ? undefined : checkAccount(account, `${where}: AccountName`),
    accountKey: fields.get("AccountKey"),
    sas: fields.get("SharedAccessSignature"),
    blobEndpoint: fields.has("BlobEndpoint")
      ? checkEndpoint(fields.get("BlobEndpoint"), `${where}: BlobEndpoint`)
      : undefined,
    suffix: fields.get("EndpointSuffix"),
  };
}

function checkKey(key: unknown, where: string): string {
  if (typeof key === "string" && key !== "") {
    try {
      if (fromBase64(key).length > 0) return key;
    } catch {
      // Reported below.
    }
  }
  throw new ConfigError(
    `${where}: expected the account key in base64, got ${
      typeof key === "string" ? "text that is not base64" : show(key)
    }`,
  );
}

function checkSas(sas: unknown, where: string): string {
  const text = typeof sas === "string" ? sas.replace(/^\?/, "") : "";
  if (!/(^|&)sig=/.test(text)) {
    throw new ConfigError(
      `${where}: expected a shared access signature (a query string with sig=…), got ${
        typeof sas === "string" ? "text without sig=" : show(sas)
      }`,
    );
  }
  return text;
}

type Auth = { key: string } | { sas: string };

interface Resolved {
  account: string;
  endpoint: string;
  auth: Auth;
}

/** One way in, an account and an endpoint, from the options and the connection string. */
function resolveAccess(options: AzureStorageOptions): Resolved {
  const ways = (["accountKey", "sasToken", "connectionString"] as const)
    .filter((k) => options[k] !== undefined);
  if (ways.length !== 1) {
    throw new ConfigError(
      ways.length === 0
        ? "azure: no credentials: set one of accountKey, sasToken or connectionString"
        : `azure: ${ways.join(" and ")} are both set: set exactly one of accountKey, sasToken ` +
          "or connectionString",
    );
  }
  const cs = options.connectionString === undefined
    ? {} as ConnectionString
    : parseConnectionString(options.connectionString);
  let auth: Auth;
  if (options.accountKey !== undefined) {
    auth = { key: checkKey(options.accountKey, "azure.accountKey") };
  } else if (options.sasToken !== undefined) {
    auth = { sas: checkSas(options.sasToken, "azure.sasToken") };
  } else if ((cs.accountKey === undefined) === (cs.sas === undefined)) {
    throw new ConfigError(
      "azure.connectionString: expected exactly one of AccountKey and SharedAccessSignature, " +
        `got ${cs.accountKey === undefined ? "neither" : "both"}`,
    );
  } else {
    auth = cs.accountKey !== undefined
      ? { key: checkKey(cs.accountKey, "azure.connectionString: AccountKey") }
      : { sas: checkSas(cs.sas, "azure.connectionString: SharedAccessSignature") };
  }

  const explicit = options.endpoint === undefined
    ? undefined
    : checkEndpoint(options.endpoint, "azure.endpoint");
  if (explicit && cs.blobEndpoint && explicit !== cs.blobEndpoint) {
    throw new ConfigError(
      `azure.endpoint: "${explicit}" differs from the connection string's BlobEndpoint ` +
        `"${cs.blobEndpoint}": give one`,
    );
  }
  const given = options.account === undefined
    ? undefined
    : checkAccount(options.account, "azure.account");
  if (given && cs.account && given !== cs.account) {
    throw new ConfigError(
      `azure.account: "${given}" differs from the connection string's AccountName ` +
        `"${cs.account}": give one`,
    );
  }
  const named = explicit ?? cs.blobEndpoint;
  const account = given ?? cs.account ?? (named ? accountOfEndpoint(named) : undefined);
  if (!account) {
    throw new ConfigError(
      "azure.account: no storage account: set account, or an endpoint or connection string " +
        "that names it",
    );
  }
  const suffix = cs.suffix ?? "core.windows.net";
  const endpoint = named ?? `${cs.protocol ?? "https"}://${account}.blob.${suffix}`;
  return { account, endpoint, auth };
}

/** The environment variables of Azure's own tools that name a storage account's credentials. */
export const AZURE_ENV = {
  connectionString: "AZURE_STORAGE_CONNECTION_STRING",
  account: "AZURE_STORAGE_ACCOUNT",
  accountKey: "AZURE_STORAGE_KEY",
  sasToken: "AZURE_STORAGE_SAS_TOKEN",
} as const;

/**
 * The account and one way in that Azure's environment variables ({@linkcode AZURE_ENV})
 * give, for a config loader to merge under what the config says: the connection string when
 * set, else the account with its key (or else its SAS). Reads only through `get`.
 *
 * @param get Reads one environment variable (`undefined` when unset).
 * @returns The options found; empty when none is set.
 *
 * @example From the process environment
 * ```ts ignore
 * const found = azureOptionsFromEnv((name) => Deno.env.get(name));
 * const storage = new AzureStorage({ container: "omniq", ...found });
 * ```
 */
export function azureOptionsFromEnv(
  get: (name: string) => string | undefined,
): Partial<AzureStorageOptions> {
  const connectionString = get(AZURE_ENV.connectionString);
  if (connectionString) return { connectionString };
  const out: Partial<AzureStorageOptions> = {};
  const account = get(AZURE_ENV.account);
  if (account) out.account = account;
  const accountKey = get(AZURE_ENV.accountKey);
  const sasToken = get(AZURE_ENV.sasToken);
  if (accountKey) out.accountKey = accountKey;
  else if (sasToken) out.sasToken = sasToken;
  return out;
}

// --- Shared Key ------------------------------------------------------------------------

const keyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(accountKey: string): Promise<CryptoKey> {
  let key = keyCache.get(accountKey);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      fromBase64(accountKey) as Uint8Array<ArrayBuffer>,
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    keyCache.set(accountKey, key);
  }
  return key;
}

/** The standard headers of the string to sign, in the order Shared Key lists them. */
const SIGNED_HEADERS = [
  "content-encoding",
  "content-language",
  "content-length",
  "content-md5",
  "content-type",
  "date",
  "if-modified-since",
  "if-match",
  "if-none-match",
  "if-unmodified-since",
  "range",
];

/** Shared Key's string to sign for the Blob service (versions since 2015-02-21). */
function stringToSign(request: SignableRequest, account: string): string {
  const { headers, url } = request;
  const standard = SIGNED_HEADERS.map((name) => {
    // A zero length is signed as empty (the header may be absent or 0).
    if (name === "content-length") {
      return request.contentLength ? String(request.contentLength) : "";
    }
    return headers.get(name) ?? "";
  });
  const msHeaders = [...headers]
    .filter(([name]) => name.startsWith("x-ms-"))
    .map(([name, value]) => `${name}:${value.replace(/\s+/g, " ").trim()}\n`)
    .sort()
    .join("");
  const params = new Map<string, string[]>();
  for (const [name, value] of url.searchParams) {
    const lower = name.toLowerCase();
    params.set(lower, [...(params.get(lower) ?? []), value]);
  }
  // The path as sent (percent-encoded); on a path-style endpoint it starts with the
  // account, which so appears twice, as the emulator's documented form has it.
  let resource = `/${account}${url.pathname}`;
  for (const name of [...params.keys()].sort()) {
    resource += `\n${name}:${params.get(name)!.sort().join(",")}`;
  }
  return [request.method.toUpperCase(), ...standard].join("\n") + "\n" + msHeaders + resource;
}

/**
 * Sign a Blob service request with Shared Key: sets `x-ms-date`, `x-ms-version` (when
 * absent) and `Authorization: SharedKey account:signature`, the signature being HMAC-SHA256
 * of the canonical request under the account key.
 *
 * @param request The request's method, URL, headers and body length.
 * @param credentials The account and its key.
 * @returns When the headers are set.
 *
 * @example Sign a raw Get Blob
 * ```ts ignore
 * const url = new URL("http://127.0.0.1:10000/devstoreaccount1/c/blob");
 * const headers = new Headers();
 * await signSharedKey({ method: "GET", url, headers }, { account, accountKey });
 * const response = await fetch(url, { headers });
 * ```
 */
export async function signSharedKey(
  request: SignableRequest,
  credentials: SharedKeyCredentials,
): Promise<void> {
  request.headers.set("x-ms-date", new Date().toUTCString());
  if (!request.headers.has("x-ms-version")) request.headers.set("x-ms-version", API_VERSION);
  const text = new TextEncoder().encode(stringToSign(request, credentials.account));
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(credentials.accountKey), text);
  request.headers.set(
    "authorization",
    `SharedKey ${credentials.account}:${toBase64(new Uint8Array(mac))}`,
  );
}

// --- the storage -----------------------------------------------------------------------

/** The segment escaped for a URL path: also `!'()*`, which some servers read differently. */
function escapeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function decodeXml(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const lower = e.toLowerCase();
    if (lower[0] === "#") {
      return String.fromCodePoint(
        lower[1] === "x" ? parseInt(lower.slice(2), 16) : parseInt(lower.slice(1), 10),
      );
    }
    return { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" }[lower]!;
  });
}

function xmlField(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<${tag}(?:\\s[^>]*)?>([^<]*)</${tag}>`).exec(xml);
  return m ? decodeXml(m[1]) : undefined;
}

function errorCode(reply: Reply): string | undefined {
  return reply.headers.get("x-ms-error-code") ??
    xmlField(new TextDecoder().decode(reply.body), "Code");
}

function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * ceiling / 2;
}

/**
 * A container's folder as a {@linkcode ConditionalStorage}: key `tasks/a.json` is the block
 * blob `<prefix>/tasks/a.json`.
 *
 * @example Create a key once
 * ```ts ignore
 * const storage = new AzureStorage({ container: "omniq", connectionString: "…" });
 * const created = await storage.createIfAbsent("lock", new TextEncoder().encode("me"));
 * ```
 */
export class AzureStorage implements ConditionalStorage {
  /** Conditional writes are atomic at the store. */
  readonly conditional = true as const;
  /** The store's URL form, `az://container/prefix?account=…` (never a credential). */
  readonly location: string;
  readonly #container: string;
  readonly #prefix: string;
  readonly #account: string;
  readonly #endpoint: string;
  readonly #auth: Auth;
  readonly #timeoutMs: number;

  /**
   * Check the options key by key and resolve the account, endpoint and credentials.
   *
   * @param options The container, prefix and one way in.
   * @throws {ConfigError} An unknown or bad option, no credentials or more than one.
   */
  constructor(options: AzureStorageOptions) {
    if (typeof options !== "object" || options === null) {
      throw new ConfigError(`azure: expected an options object, got ${show(options)}`);
    }
    checkKeys(options, OPTION_KEYS, "azure");
    this.#container = checkContainer(options.container, "azure.container");
    this.#prefix = options.prefix === undefined ? "" : checkPrefix(options.prefix, "azure.prefix");
    const timeout = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout <= 0) {
      throw new ConfigError(
        `azure.timeoutMs: expected a positive number of milliseconds, got ${show(timeout)}`,
      );
    }
    this.#timeoutMs = timeout;
    const access = resolveAccess(options);
    this.#account = access.account;
    this.#endpoint = access.endpoint;
    this.#auth = access.auth;
    const defaultEndpoint = `https://${access.account}.blob.core.windows.net`;
    const path = this.#prefix ? `/${this.#prefix.split("/").map(escapeSegment).join("/")}` : "";
    this.location = `az://${this.#container}${path}?account=${access.account}` +
      (access.endpoint === defaultEndpoint ? "" : `&endpoint=${access.endpoint}`);
  }

  #name(key: string): string {
    return this.#prefix ? `${this.#prefix}/${key}` : key;
  }

  #url(call: Call): URL {
    let path = `${this.#endpoint}/${this.#container}`;
    if (call.key !== undefined) {
      path += `/${this.#name(call.key).split("/").map(escapeSegment).join("/")}`;
    }
    const url = new URL(path);
    for (const [name, value] of Object.entries(call.query ?? {})) url.searchParams.set(name, value);
    if ("sas" in this.#auth) {
      url.search = url.search ? `${url.search}&${this.#auth.sas}` : `?${this.#auth.sas}`;
    }
    return url;
  }

  /** One call, retried on a network error, a timeout, 429 or a 5xx. */
  async #send(call: Call): Promise<Reply> {
    let retried = false;
    for (let attempt = 0;; attempt++) {
      const url = this.#url(call);
      const headers = new Headers(call.headers);
      if (call.body) headers.set("content-type", "application/octet-stream");
      try {
        if ("key" in this.#auth) {
          await signSharedKey(
            { method: call.method, url, headers, contentLength: call.body?.length },
            { account: this.#account, accountKey: this.#auth.key },
          );
        } else {
          headers.set("x-ms-version", API_VERSION);
          headers.set("x-ms-date", new Date().toUTCString());
        }
        const response = await fetch(url, {
          method: call.method,
          headers,
          body: call.body as Uint8Array<ArrayBuffer> | undefined,
          signal: AbortSignal.timeout(this.#timeoutMs),
        });
        const body = new Uint8Array(await response.arrayBuffer());
        const reply = { status: response.status, headers: response.headers, body, retried };
        if (!TRANSIENT.has(response.status) || attempt + 1 >= ATTEMPTS) return reply;
        if (MAYBE_APPLIED.has(response.status)) retried = true;
      } catch (error) {
        if (attempt + 1 >= ATTEMPTS) {
          throw new OmniQError(
            `azure ${this.location}: ${call.method} ${call.key ?? "(container)"}: no answer ` +
              `after ${ATTEMPTS} attempts: ${error instanceof Error ? error.message : error}`,
            { cause: error },
          );
        }
        // The request may have reached the service before the answer was lost.
        retried = true;
      }
      await delay(backoff(attempt));
    }
  }

  #fail(what: string, key: string | undefined, reply: Reply): OmniQError {
    const text = new TextDecoder().decode(reply.body);
    const code = errorCode(reply) ?? "no error code";
    if (code === "ContainerNotFound") {
      return new OmniQError(
        `azure ${this.location}: ${what} ${key}: container "${this.#container}" does not ` +
          `exist in account ${this.#account} (HTTP 404 ContainerNotFound; create it first, ` +
          `e.g. with createContainer())`,
      );
    }
    const message = xmlField(text, "Message")?.split("\n")[0];
    return new OmniQError(
      `azure ${this.location}: ${what} ${key ?? `container ${this.#container}`}: HTTP ` +
        `${reply.status} ${code}${message ? `: ${message}` : ""}`,
    );
  }

  /** A 404 of a blob call: the blob is absent (`true`), or the container is (throws). */
  #absent(what: string, key: string, reply: Reply): boolean {
    if (reply.status !== 404) return false;
    if (errorCode(reply) === "ContainerNotFound") throw this.#fail(what, key, reply);
    return true;
  }

  /**
   * Create the container (Create Container).
   *
   * @returns Whether this call created it (`false`: it existed).
   */
  async createContainer(): Promise<boolean> {
    const reply = await this.#send({ method: "PUT", query: { restype: "container" } });
    if (reply.status === 201) return true;
    if (reply.status === 409 && errorCode(reply) === "ContainerAlreadyExists") return false;
    throw this.#fail("create", undefined, reply);
  }

  /** Names directly under `prefix`: blobs and sub-folders, every page of List Blobs. */
  async list(prefix: string): Promise<string[]> {
    const base = prefix.replace(/^\/+|\/+$/g, "");
    const under = base ? `${this.#name(base)}/` : this.#prefix ? `${this.#prefix}/` : "";
    const names: string[] = [];
    let marker = "";
    do {
      const query: Record<string, string> = {
        restype: "container",
        comp: "list",
        delimiter: "/",
      };
      if (under) query.prefix = under;
      if (marker) query.marker = marker;
      const reply = await this.#send({ method: "GET", query });
      if (reply.status !== 200) throw this.#fail("list", `${base}/`, reply);
      const xml = new TextDecoder().decode(reply.body);
      for (const m of xml.matchAll(/<(Blob|BlobPrefix)>\s*<Name(?:\s[^>]*)?>([^<]*)<\/Name>/g)) {
        const name = decodeXml(m[2]).slice(under.length).replace(/\/$/, "");
        if (name !== "") names.push(name);
      }
      marker = xmlField(xml, "NextMarker") ?? "";
    } while (marker);
    return names;
  }

  /** The bytes at `key` (Get Blob), or `undefined` when absent. */
  async read(key: string): Promise<Uint8Array | undefined> {
    return (await this.readVersioned(key))?.data;
  }

  /** The bytes at `key` and their ETag, or `undefined` when absent. */
  async readVersioned(key: string): Promise<Versioned | undefined> {
    const reply = await this.#send({ method: "GET", key });
    if (this.#absent("read", key, reply)) return undefined;
    if (reply.status !== 200) throw this.#fail("read", key, reply);
    return { data: reply.body, version: reply.headers.get("etag")! };
  }

  async #properties(key: string): Promise<Headers | undefined> {
    const reply = await this.#send({ method: "HEAD", key });
    if (this.#absent("stat", key, reply)) return undefined;
    if (reply.status !== 200) throw this.#fail("stat", key, reply);
    return reply.headers;
  }

  /** The ETag of `key` (Get Blob Properties), or `undefined` when absent. */
  async versionOf(key: string): Promise<string | undefined> {
    return (await this.#properties(key))?.get("etag") ?? undefined;
  }

  /** When `key` was last written (ms; Azure keeps whole seconds), or `undefined`. */
  async modified(key: string): Promise<number | undefined> {
    const modified = (await this.#properties(key))?.get("last-modified");
    return modified ? Date.parse(modified) : undefined;
  }

  /** Replace `key` with `data` (Put Blob: readers see the old or the new bytes). */
  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    const reply = await this.#send({
      method: "PUT",
      key,
      headers: { "x-ms-blob-type": "BlockBlob" },
      body: data,
    });
    if (reply.status !== 201) throw this.#fail("write", key, reply);
  }

  /**
   * Write `key` only when its ETag is `expected` (`null`: only when absent).
   *
   * @returns The new ETag, or `undefined` when the precondition failed.
   */
  async putIf(key: string, data: Uint8Array, expected: string | null): Promise<string | undefined> {
    const reply = await this.#send({
      method: "PUT",
      key,
      headers: {
        "x-ms-blob-type": "BlockBlob",
        ...(expected === null ? { "if-none-match": "*" } : { "if-match": expected }),
      },
      body: data,
    });
    if (reply.status === 201) return reply.headers.get("etag")!;
    const code = errorCode(reply);
    // A create over an existing blob is 409 BlobAlreadyExists, a stale ETag 412, an ETag
    // on a blob that is gone 412 or 404, by service version.
    const refused = reply.status === 412 ||
      (reply.status === 409 && code === "BlobAlreadyExists") ||
      (expected !== null && this.#absent("write", key, reply));
    if (!refused) throw this.#fail("write", key, reply);
    if (!reply.retried) return undefined;
    // An earlier attempt may have written and lost its answer: then the blob holds our bytes.
    const now = await this.readVersioned(key);
    return now && sameBytes(now.data, data) ? now.version : undefined;
  }

  /** Delete `key` only when its ETag is `expected`; whether this call deleted it. */
  async deleteIf(key: string, expected: string): Promise<boolean> {
    const reply = await this.#send({ method: "DELETE", key, headers: { "if-match": expected } });
    if (reply.status === 202) return true;
    // A blob that is gone answers 404, or 412 (Azurite checks the ETag first).
    const refused = reply.status === 412 || this.#absent("delete", key, reply);
    if (!refused) throw this.#fail("delete", key, reply);
    if (!reply.retried) return false;
    // After a lost answer a blob that is gone was most likely deleted by our first attempt;
    // saying false would make a rename take back its copy and so lose the blob.
    return (await this.versionOf(key)) === undefined;
  }

  /** Create `key` only when absent; whether this call created it. */
  async createIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    return (await this.putIf(key, data, null)) !== undefined;
  }

  /**
   * Move `from` to `to` only when `to` is absent: copy with `If-None-Match: *`, then delete
   * the source on the version copied; when that delete loses, the copy is taken back.
   */
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
   * Append bytes to `key` (created when absent): read, then write on the version read.
   *
   * Not Append Blob's Append Block, though it takes one request instead of two: a retried
   * Append Block whose first answer was lost adds the bytes twice, and a whole rewrite (the
   * journal's replay, `writeAtomic`) leaves a block blob that Append Block refuses.
   */
  async append(key: string, data: Uint8Array): Promise<void> {
    for (let attempt = 0; attempt < APPEND_ATTEMPTS; attempt++) {
      const current = await this.readVersioned(key);
      const next = current ? concat(current.data, data) : data;
      if ((await this.putIf(key, next, current?.version ?? null)) !== undefined) return;
      await delay(backoff(Math.min(attempt, 4)));
    }
    throw new OmniQError(
      `azure ${this.location}: append ${key}: the blob kept changing under ` +
        `${APPEND_ATTEMPTS} attempts (it has one writer, the holder of the lock)`,
    );
  }

  /** Rewrite `key`'s bytes on its version, so its modified time moves; whether it exists. */
  async touch(key: string): Promise<boolean> {
    const current = await this.readVersioned(key);
    if (!current) return false;
    if ((await this.putIf(key, current.data, current.version)) !== undefined) return true;
    // Another writer got there first, which moved the time as well, unless it deleted it.
    return (await this.versionOf(key)) !== undefined;
  }

  /** Delete `key` (Delete Blob); whether it existed. */
  async delete(key: string): Promise<boolean> {
    const reply = await this.#send({ method: "DELETE", key });
    if (reply.status === 202) return true;
    if (this.#absent("delete", key, reply)) return reply.retried;
    throw this.#fail("delete", key, reply);
  }

  /** Nothing to release: every request ends on its own (or at its timeout). */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
