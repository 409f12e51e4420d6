// The `gs://` store (backends/file/cloud/gcs.ts): its URL and option errors, the
// service-account JWT and token exchange, and the adapter on a real GCS JSON API server
// (tests/cloud/gcs_server.ts).
//
// No emulator that installs here enforces `ifGenerationMatch` (see gcs_server.ts): the
// firebase-tools storage emulator, started by default, runs every case that needs no
// precondition, and a probe shows it ignores them. The fencing cases and the storage
// contract need a server that enforces them: give one in OMNIQ_TEST_GCS_ENDPOINT (e.g.
// `fake-gcs-server -scheme http -port 4443`); without it they are reported as ignored, with
// that reason in their names.

import assert from "node:assert/strict";
import {
  GCS_SCOPE,
  GcsStorage,
  type GcsStorageOptions,
  parseGcsUrl,
  signServiceAccountJwt,
} from "../../backends/file/cloud/gcs.ts";
import type { ConditionalStorage } from "../../backends/file/storage.ts";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { GCS_ENDPOINT_ENV, probePreconditions, startGcs } from "./gcs_server.ts";
import { storageContract } from "./storage_contract.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);
const unique = () => crypto.randomUUID().slice(0, 8);

/** `fn` throws an instance of `type` whose message includes `message`. */
function assertThrows(
  fn: () => unknown,
  type: new (...args: never[]) => Error,
  message: string,
  what = "",
) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `${what}: expected a ${type.name}, got ${e}`);
    assert.ok(
      e.message.includes(message),
      `${what}: ${JSON.stringify(e.message)} lacks ${JSON.stringify(message)}`,
    );
    return true;
  });
}

/** `fn` rejects with an instance of `type` whose message includes `message`; that error. */
async function assertRejects(
  fn: () => Promise<unknown>,
  type: new (...args: never[]) => Error,
  message = "",
) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof type, `expected a ${type.name}, got ${e}`);
    assert.ok(
      e.message.includes(message),
      `${JSON.stringify(e.message)} lacks ${JSON.stringify(message)}`,
    );
    return e;
  }
  assert.fail(`expected a ${type.name} to be thrown`);
}

// ---------------------------------------------------------------- bad input

Deno.test("gcs url: a good URL gives bucket, prefix, endpoint and anonymous", () => {
  assert.deepStrictEqual(parseGcsUrl("gs://omniq"), { bucket: "omniq" });
  assert.deepStrictEqual(
    parseGcsUrl("gs://omniq.data_1/queues/main/?endpoint=http://127.0.0.1:4443/&anonymous=true"),
    {
      bucket: "omniq.data_1",
      prefix: "queues/main",
      endpoint: "http://127.0.0.1:4443",
      anonymous: true,
    },
  );
  assert.deepStrictEqual(parseGcsUrl("gs://omniq/p?anonymous=false"), {
    bucket: "omniq",
    prefix: "p",
  });
});

Deno.test("gcs url: each error names what is wrong", () => {
  const cases: [string, string][] = [
    ["s3://omniq/p", 'gs URL: expected "gs://bucket/prefix", got "s3://omniq/p"'],
    ["gs://", "gs URL bucket: expected a bucket name"],
    ["gs:///p", "gs URL bucket: expected a bucket name"],
    ["gs://Omniq", '"Omniq" is not a valid bucket name (bad characters or ends)'],
    ["gs://-omniq", '"-omniq" is not a valid bucket name (bad characters or ends)'],
    ["gs://ab", '"ab" is not a valid bucket name (too short)'],
    [`gs://${"a".repeat(64)}`, "is not a valid bucket name (too long)"],
    ["gs://a..b", "(a dot-separated part is empty or longer than 63)"],
    ["gs://192.168.1.1", '"192.168.1.1" is not a valid bucket name (an IP address)'],
    ["gs://goog-data", '(starts with "goog")'],
    ["gs://my-g00gle-data", '(contains "google")'],
    ["gs://omniq/a//b", 'gs URL prefix: "a//b" has an empty, "." or ".." segment'],
    ["gs://omniq/a/../b", 'gs URL prefix: "a/../b" has an empty, "." or ".." segment'],
    [
      "gs://omniq?endpiont=http://x",
      'gs URL: unknown parameter "endpiont" (did you mean "endpoint"?)',
    ],
    [
      "gs://omniq?region=eu",
      'gs URL: unknown parameter "region"; expected one of endpoint, anonymous',
    ],
    ["gs://omniq?endpoint=ftp://x", "gs URL endpoint: expected an http(s) URL without query"],
    ["gs://omniq?endpoint=nowhere", 'got "nowhere"'],
    ["gs://omniq?endpoint=http://u:p@h", "without query, fragment or credentials"],
    ["gs://omniq?anonymous=maybe", 'gs URL anonymous: expected true or false, got "maybe"'],
  ];
  for (const [url, message] of cases) {
    assertThrows(() => parseGcsUrl(url), ConfigError, message, url);
  }
});

const PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n";

Deno.test("gcs options: each error names the option and what was expected", () => {
  const ok: GcsStorageOptions = { bucket: "omniq", anonymous: true };
  const cases: [unknown, string][] = [
    ["gs://omniq", 'gcs: expected an options object, got "gs://omniq"'],
    [{ ...ok, bukcet: "x" }, 'gcs.bukcet: unknown option (did you mean "bucket"?)'],
    [{ anonymous: true }, "gcs.bucket: expected a bucket name"],
    [{ ...ok, bucket: "No" }, 'gcs.bucket: "No" is not a valid bucket name'],
    [{ ...ok, prefix: 7 }, "gcs.prefix: expected a string (a folder in the bucket), got 7"],
    [{ ...ok, prefix: "../up" }, 'gcs.prefix: "../up" has an empty, "." or ".." segment'],
    [{ ...ok, endpoint: "localhost:4443" }, "gcs.endpoint: expected an http(s) URL"],
    [{ ...ok, timeoutMs: 0 }, "gcs.timeoutMs: expected a positive integer of milliseconds, got 0"],
    [{ ...ok, anonymous: "yes" }, 'gcs.anonymous: expected true or false, got "yes"'],
    [
      { bucket: "omniq" },
      "gcs: expected exactly one of accessToken, credentials or anonymous: true, got none",
    ],
    [
      { bucket: "omniq", anonymous: false },
      "gcs: expected exactly one of accessToken, credentials or anonymous: true, got none",
    ],
    [
      { ...ok, accessToken: "t" },
      "gcs: expected exactly one of accessToken, credentials or anonymous: true, got accessToken and anonymous",
    ],
    [{ bucket: "omniq", accessToken: "" }, 'gcs.accessToken: expected an OAuth2 token, got ""'],
    [
      { bucket: "omniq", credentials: "key.json" },
      'gcs.credentials: expected a service-account key object (client_email, private_key), got "key.json"',
    ],
    [
      { bucket: "omniq", credentials: { clientEmail: "a@b", private_key: PEM } },
      'gcs.credentials.clientEmail: unknown option (did you mean "client_email"?)',
    ],
    [
      { bucket: "omniq", credentials: { private_key: PEM } },
      "gcs.credentials.client_email: expected the service account's e-mail address, got nothing",
    ],
    [
      { bucket: "omniq", credentials: { client_email: "a@b" } },
      "gcs.credentials.private_key: expected a PKCS#8 PEM private key, got nothing",
    ],
    [
      {
        bucket: "omniq",
        credentials: {
          client_email: "a@b",
          private_key: "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
        },
      },
      'gcs.credentials.private_key: expected a PKCS#8 PEM key ("-----BEGIN PRIVATE KEY-----", as in a service-account key file), got a PKCS#1 key',
    ],
    [
      { bucket: "omniq", credentials: { client_email: "a@b", private_key: PEM, token_uri: "x" } },
      'gcs.credentials.token_uri: expected an http(s) URL without query, fragment or credentials (e.g. "https://storage.googleapis.com" or "http://127.0.0.1:4443"), got "x"',
    ],
  ];
  for (const [options, message] of cases) {
    assertThrows(
      () => new GcsStorage(options as GcsStorageOptions),
      ConfigError,
      message,
      JSON.stringify(options),
    );
  }
  // A whole key file is accepted as it is (its other fields unused).
  new GcsStorage({
    bucket: "omniq",
    credentials: {
      type: "service_account",
      project_id: "p",
      private_key_id: "k1",
      private_key: PEM.replaceAll("\n", "\\n"),
      client_email: "a@p.iam.gserviceaccount.com",
      client_id: "1",
      auth_uri: "https://accounts.google.com/o/oauth2/auth",
      token_uri: "https://oauth2.googleapis.com/token",
      auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs",
      client_x509_cert_url: "https://www.googleapis.com/robot/v1/metadata/x509/a",
      universe_domain: "googleapis.com",
    },
  });
});

Deno.test("gcs options: the location is the URL form, without credentials", () => {
  assert.deepStrictEqual(
    new GcsStorage({ bucket: "omniq", accessToken: "secret-token" }).location,
    "gs://omniq",
  );
  assert.deepStrictEqual(
    new GcsStorage({ bucket: "omniq", prefix: "/a b/c/", anonymous: true }).location,
    "gs://omniq/a%20b/c",
  );
  const local = new GcsStorage({
    bucket: "omniq",
    endpoint: "http://127.0.0.1:4443/",
    anonymous: true,
  });
  assert.deepStrictEqual(parseGcsUrl(local.location).endpoint, "http://127.0.0.1:4443");
});

// ---------------------------------------------------------------- JWT and token

function b64url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replaceAll("-", "+").replaceAll("_", "/");
  const bin = atob(b64 + "=".repeat((4 - b64.length % 4) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

async function serviceAccount(tokenUri?: string) {
  const pair = await crypto.subtle.generateKey(
    {
      name: "RSASSA-PKCS1-v1_5",
      modulusLength: 2048,
      publicExponent: new Uint8Array([1, 0, 1]),
      hash: "SHA-256",
    },
    true,
    ["sign", "verify"],
  );
  const der = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  const body = btoa(String.fromCharCode(...der)).match(/.{1,64}/g)!.join("\n");
  return {
    publicKey: pair.publicKey,
    key: {
      client_email: "omniq-test@omniq.iam.gserviceaccount.com",
      private_key_id: "key-1",
      private_key: `-----BEGIN PRIVATE KEY-----\n${body}\n-----END PRIVATE KEY-----\n`,
      ...(tokenUri ? { token_uri: tokenUri } : {}),
    },
  };
}

async function verifyJwt(jwt: string, publicKey: CryptoKey) {
  const [header, claims, signature] = jwt.split(".");
  const valid = await crypto.subtle.verify(
    "RSASSA-PKCS1-v1_5",
    publicKey,
    b64url(signature),
    enc(`${header}.${claims}`),
  );
  return {
    valid,
    header: JSON.parse(dec(b64url(header))!),
    claims: JSON.parse(dec(b64url(claims))!),
  };
}

Deno.test("gcs jwt: signed RS256 by the account's key, for the storage scope at its token URI", async () => {
  const { key, publicKey } = await serviceAccount();
  const jwt = await signServiceAccountJwt(key, { now: 1_700_000_000 });
  assert(/^[\w-]+\.[\w-]+\.[\w-]+$/.test(jwt), "three base64url parts, no padding");
  const seen = await verifyJwt(jwt, publicKey);
  assert(seen.valid, "the signature verifies with the public key");
  assert.deepStrictEqual(seen.header, { alg: "RS256", typ: "JWT", kid: "key-1" });
  assert.deepStrictEqual(seen.claims, {
    iss: key.client_email,
    scope: GCS_SCOPE,
    aud: "https://oauth2.googleapis.com/token",
    iat: 1_700_000_000,
    exp: 1_700_003_600,
  });
  // A key with its newlines left escaped (as an environment variable holds it) signs the same.
  const escaped = { ...key, private_key: key.private_key.replaceAll("\n", "\\n") };
  assert((await verifyJwt(await signServiceAccountJwt(escaped), publicKey)).valid);
  // Another key's signature does not verify.
  const other = await serviceAccount();
  assert.deepStrictEqual(
    (await verifyJwt(await signServiceAccountJwt(other.key), publicKey)).valid,
    false,
  );
});

Deno.test("gcs jwt: a key that is no RSA PKCS#8 key is a ConfigError", async () => {
  await assertRejects(
    () => signServiceAccountJwt({ client_email: "a@b", private_key: PEM }),
    ConfigError,
    "gcs credentials.private_key: not an RSA PKCS#8 key",
  );
});

/** An OAuth2 token endpoint on loopback that checks each assertion with the public key. */
function tokenEndpoint(publicKey: CryptoKey, answer: (n: number) => Response | undefined) {
  const seen: { grant: string | null; valid: boolean; claims: Record<string, unknown> }[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const form = new URLSearchParams(await req.text());
    const jwt = await verifyJwt(form.get("assertion") ?? "..", publicKey).catch(() => undefined);
    seen.push({ grant: form.get("grant_type"), valid: jwt?.valid ?? false, claims: jwt?.claims });
    return answer(seen.length) ??
      Response.json({ access_token: "owner", expires_in: 3600, token_type: "Bearer" });
  });
  return { url: `http://127.0.0.1:${server.addr.port}/token`, seen, server };
}

// ---------------------------------------------------------------- on the server

const gcs = await startGcs();
const external = Deno.env.get(GCS_ENDPOINT_ENV) !== undefined;
const NO_ENFORCING_EMULATOR = `ignored: no emulator installable here enforces ifGenerationMatch; ` +
  `set ${GCS_ENDPOINT_ENV} to one that does (e.g. fake-gcs-server)`;

function storage(): ConditionalStorage {
  return gcs.storage(`t-${unique()}`);
}

Deno.test(`gcs emulator: ${gcs.emulator} — does it enforce ifGenerationMatch? (raw probe)`, async () => {
  const probe = await probePreconditions(
    gcs.url,
    gcs.options.bucket as string,
    gcs.options as never,
  );
  console.log(`${gcs.emulator}:\n  ${probe.evidence.join("\n  ")}`);
  // A server given for the fencing cases must enforce them; the firebase-tools emulator is
  // known not to (if a release starts to, this fails: run the contract on it then).
  assert.deepStrictEqual(probe.enforced, external, probe.evidence.join("\n"));
});

Deno.test("gcs token: minted once from the key, sent as the bearer, reused while valid", async () => {
  const { key, publicKey } = await serviceAccount();
  const endpoint = tokenEndpoint(publicKey, () => undefined);
  try {
    const st = new GcsStorage({
      bucket: gcs.options.bucket as string,
      endpoint: gcs.url,
      prefix: `t-${unique()}`,
      credentials: { ...key, token_uri: endpoint.url },
    });
    await Promise.all([st.writeAtomic("a", enc("1")), st.writeAtomic("b", enc("2"))]);
    assert.deepStrictEqual(dec(await st.read("a")), "1");
    assert.deepStrictEqual((await st.list("")).sort(), ["a", "b"]);
    assert.deepStrictEqual(endpoint.seen.length, 1, "one token for every request");
    assert.deepStrictEqual(endpoint.seen[0].grant, "urn:ietf:params:oauth:grant-type:jwt-bearer");
    assert(endpoint.seen[0].valid, "the assertion verifies with the account's public key");
    assert.deepStrictEqual(endpoint.seen[0].claims.aud, endpoint.url);
  } finally {
    await endpoint.server.shutdown();
  }
});

Deno.test("gcs token: renewed when due; a refusal names the account and the error", async () => {
  const { key, publicKey } = await serviceAccount();
  // Tokens that expire within the renewal margin are used once each.
  const short = tokenEndpoint(
    publicKey,
    () => Response.json({ access_token: "owner", expires_in: 60 }),
  );
  try {
    const st = new GcsStorage({
      bucket: gcs.options.bucket as string,
      endpoint: gcs.url,
      prefix: `t-${unique()}`,
      credentials: { ...key, token_uri: short.url },
    });
    await st.writeAtomic("a", enc("1"));
    await st.read("a");
    assert.deepStrictEqual(short.seen.length, 2);
  } finally {
    await short.server.shutdown();
  }
  const refusing = tokenEndpoint(
    publicKey,
    () =>
      Response.json({ error: "invalid_grant", error_description: "Invalid JWT Signature." }, {
        status: 400,
      }),
  );
  try {
    const st = new GcsStorage({
      bucket: gcs.options.bucket as string,
      endpoint: gcs.url,
      credentials: { ...key, token_uri: refusing.url },
    });
    await assertRejects(
      () => st.read("a"),
      OmniQError,
      `gcs: ${key.client_email} got no access token from ${refusing.url}: HTTP 400 invalid_grant: Invalid JWT Signature.`,
    );
  } finally {
    await refusing.server.shutdown();
  }
});

Deno.test("gcs storage: an absent key reads as undefined everywhere", async () => {
  const st = storage();
  assert.deepStrictEqual(await st.read("tasks/none.json"), undefined);
  assert.deepStrictEqual(await st.readVersioned("tasks/none.json"), undefined);
  assert.deepStrictEqual(await st.versionOf("tasks/none.json"), undefined);
  assert.deepStrictEqual(await st.modified("tasks/none.json"), undefined);
  assert.deepStrictEqual(await st.list("tasks"), []);
  assert.deepStrictEqual(await st.delete("tasks/none.json"), false);
  assert.deepStrictEqual(await st.touch("tasks/none.json"), false);
  assert.deepStrictEqual(await st.renameIfAbsent("tasks/none.json", "tasks/other.json"), false);
});

Deno.test("gcs storage: bytes round-trip, binary and empty; versions are generations", async () => {
  const st = storage();
  const bytes = new Uint8Array([0, 255, 1, 254, 10, 13]);
  await st.writeAtomic("a/bin", bytes);
  assert.deepStrictEqual(await st.read("a/bin"), bytes);
  await st.writeAtomic("a/empty", new Uint8Array(0));
  assert.deepStrictEqual(await st.read("a/empty"), new Uint8Array(0));
  const v1 = await st.putIf("v", enc("one"), null);
  assert(v1 !== undefined && /^\d+$/.test(v1), `generation ${v1}`);
  assert.deepStrictEqual(await st.versionOf("v"), v1);
  assert.deepStrictEqual((await st.readVersioned("v"))?.version, v1);
  await new Promise((r) => setTimeout(r, 5));
  const v2 = await st.putIf("v", enc("two"), v1);
  assert(v2 !== undefined);
  assert.notStrictEqual(v2, v1);
  assert.deepStrictEqual(await st.readVersioned("v"), { data: enc("two"), version: v2 });
  // A version that is no generation matches nothing, and is not sent.
  assert.deepStrictEqual(await st.putIf("v", enc("x"), "W/etag"), undefined);
  assert.deepStrictEqual(await st.deleteIf("v", "W/etag"), false);
  const at = await st.modified("v");
  assert(at !== undefined && Math.abs(at - Date.now()) < 120_000, `modified ${at}`);
});

Deno.test("gcs storage: list names what is directly under a prefix, every page", async () => {
  const st = storage();
  for (
    const k of ["ready/q1/0001-a", "ready/q1/0002-b", "ready/q2/0001-c", "ready-not/x", "readyfile"]
  ) {
    await st.writeAtomic(k, new Uint8Array(0));
  }
  assert.deepStrictEqual((await st.list("ready")).sort(), ["q1", "q2"]);
  assert.deepStrictEqual((await st.list("ready/q1/")).sort(), ["0001-a", "0002-b"]);
  assert.deepStrictEqual((await st.list("")).sort(), ["ready", "ready-not", "readyfile"]);
  assert.deepStrictEqual(await st.list("ready/q3"), []);
  const names = Array.from({ length: 1100 }, (_, i) => `n${String(i).padStart(5, "0")}`);
  for (let i = 0; i < names.length; i += 50) {
    await Promise.all(names.slice(i, i + 50).map((n) => st.writeAtomic(`many/${n}`, enc(n))));
  }
  assert.deepStrictEqual((await st.list("many")).sort(), names);
});

Deno.test("gcs storage: delete, rename, append and touch (one writer)", async () => {
  const st = storage();
  await st.writeAtomic("x/y", enc("1"));
  assert.deepStrictEqual(await st.delete("x/y"), true);
  assert.deepStrictEqual(await st.delete("x/y"), false);
  await st.writeAtomic("meta/journal.json", enc("j"));
  assert.deepStrictEqual(await st.renameIfAbsent("meta/journal.json", "meta/bad-1"), true);
  assert.deepStrictEqual(await st.read("meta/journal.json"), undefined);
  assert.deepStrictEqual(dec(await st.read("meta/bad-1")), "j");
  await st.append("events/w.jsonl", enc("a\n"));
  await st.append("events/w.jsonl", enc("b\n"));
  assert.deepStrictEqual(dec(await st.read("events/w.jsonl")), "a\nb\n");
  await st.writeAtomic("lock", enc("token"));
  const before = (await st.modified("lock"))!;
  await new Promise((r) => setTimeout(r, 1_100));
  assert.deepStrictEqual(await st.touch("lock"), true);
  assert.deepStrictEqual(dec(await st.read("lock")), "token");
  assert((await st.modified("lock"))! > before, "touch moves the modified time");
});

Deno.test("gcs storage: keys with unusual characters round-trip", async () => {
  const st = storage();
  const keys = ["tasks/a%20b.json", "keys/k~-_.!", "ready/q/9999-ü", "x/a+b=c&d", "y/(1)*'#?"];
  for (const k of keys) await st.writeAtomic(k, enc(k));
  for (const k of keys) assert.deepStrictEqual(dec(await st.read(k)), k);
  assert.deepStrictEqual(await st.list("keys"), ["k~-_.!"]);
  assert.deepStrictEqual(await st.list("y"), ["(1)*'#?"]);
});

Deno.test("gcs storage: an error names the store, the key, the status and the service's message", async () => {
  const st = new GcsStorage({
    bucket: "omniq-errors",
    endpoint: `${gcs.url}/nowhere`,
    anonymous: true,
    timeoutMs: 5_000,
  });
  const error = await assertRejects(() => st.list("tasks"), OmniQError);
  assert(/^gcs: list tasks in bucket omniq-errors: HTTP \d{3}/.test(error.message), error.message);
});

// ---------------------------------------------------------------- faults on the way

/**
 * A loopback proxy in front of the emulator that lets `fault` answer a request instead of
 * (or after) forwarding it: how lost answers, throttling and slow answers reach the adapter.
 */
function faultyProxy(
  fault: (n: number, req: Request, forward: () => Promise<Response>) => Promise<Response>,
) {
  const seen: string[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const url = new URL(req.url);
    seen.push(`${req.method} ${url.pathname}`);
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
    const forward = () =>
      fetch(`${gcs.url}${url.pathname}${url.search}`, {
        method: req.method,
        headers: req.headers,
        body,
      });
    return await fault(seen.length, req, forward);
  });
  const st = (options: Partial<GcsStorageOptions> = {}) =>
    new GcsStorage({
      ...(gcs.options as unknown as GcsStorageOptions),
      endpoint: `http://127.0.0.1:${server.addr.port}`,
      prefix: `t-${unique()}`,
      ...options,
    });
  return { seen, server, st };
}

const unavailable = () => new Response("busy", { status: 503 });

Deno.test("gcs retries: 503 and 429 are retried, a slow answer times out and is retried", async () => {
  const proxy = faultyProxy(async (n, _req, forward) => {
    if (n === 1) return unavailable();
    if (n === 2) {
      return Response.json({ error: { code: 429, message: "slow down" } }, { status: 429 });
    }
    if (n === 3) await new Promise((r) => setTimeout(r, 600));
    return await forward();
  });
  try {
    const st = proxy.st({ timeoutMs: 300 });
    await st.writeAtomic("k", enc("v"));
    assert.deepStrictEqual(proxy.seen.length, 4, proxy.seen.join("\n"));
    assert.deepStrictEqual(dec(await st.read("k")), "v");
  } finally {
    await proxy.server.shutdown();
  }
});

Deno.test("gcs retries: a store that keeps failing gives an error naming key, attempts and status", async () => {
  const proxy = faultyProxy(() =>
    Promise.resolve(
      Response.json({
        error: { code: 503, message: "backend down", errors: [{ reason: "backendError" }] },
      }, {
        status: 503,
      }),
    )
  );
  try {
    const st = proxy.st();
    const error = await assertRejects(() => st.read("tasks/x.json"), OmniQError);
    assert.match(
      error.message,
      /^gcs: read t-\w+\/tasks\/x\.json in bucket omniq-\w+: HTTP 503 backendError: backend down$/,
    );
    assert.deepStrictEqual(proxy.seen.length, 5, "every attempt was made");
  } finally {
    await proxy.server.shutdown();
  }
});

Deno.test("gcs retries: a delete whose answer was lost still reports the key existed", async () => {
  let lose = false;
  const proxy = faultyProxy(async (_n, req, forward) => {
    const res = await forward();
    if (lose && req.method === "DELETE") {
      lose = false;
      await res.body?.cancel();
      return unavailable();
    }
    return res;
  });
  try {
    const st = proxy.st();
    await st.writeAtomic("a", enc("1"));
    lose = true;
    assert.deepStrictEqual(await st.delete("a"), true);
    assert.deepStrictEqual(await st.read("a"), undefined);
    const v = (await st.putIf("b", enc("2"), null))!;
    lose = true;
    assert.deepStrictEqual(await st.deleteIf("b", v), true);
    assert.deepStrictEqual(await st.read("b"), undefined);
  } finally {
    await proxy.server.shutdown();
  }
});

Deno.test("gcs retries: a create whose answer was lost, refused on the retry, is this call's write", async () => {
  // The first upload reaches the store and its answer is lost; the proxy then answers the
  // retry 412, as Cloud Storage would now that the object exists. The adapter re-reads and
  // finds its own bytes: it created the object. Another writer's bytes would be a refusal.
  let step = 0;
  const proxy = faultyProxy(async (_n, req, forward) => {
    if (req.method !== "POST" || step >= 2) return await forward();
    step++;
    if (step === 1) {
      await (await forward()).body?.cancel();
      return unavailable();
    }
    return Response.json({ error: { code: 412, message: "Precondition Failed" } }, { status: 412 });
  });
  try {
    const st = proxy.st();
    const v = await st.putIf("lock", enc("mine"), null);
    assert.ok(v !== undefined, "the lost write is recognised as this call's");
    assert.deepStrictEqual(await st.versionOf("lock"), v);
    await st.writeAtomic("other", enc("theirs"));
    step = 1; // the next upload is answered 412 at once: no retry, so no claim on the bytes
    assert.deepStrictEqual(await st.putIf("other", enc("theirs"), null), undefined);
  } finally {
    await proxy.server.shutdown();
  }
});

Deno.test("gcs retries: a 401 mints a fresh token once", async () => {
  const { key, publicKey } = await serviceAccount();
  const tokens = tokenEndpoint(publicKey, () => undefined);
  const proxy = faultyProxy(async (n, _req, forward) =>
    n === 1
      ? Response.json({ error: { code: 401, message: "expired" } }, { status: 401 })
      : await forward()
  );
  try {
    const st = proxy.st({ accessToken: undefined, credentials: { ...key, token_uri: tokens.url } });
    await st.writeAtomic("k", enc("v"));
    assert.deepStrictEqual(tokens.seen.length, 2);
    assert.deepStrictEqual(proxy.seen.length, 2);
  } finally {
    await proxy.server.shutdown();
    await tokens.server.shutdown();
  }
});

// ---------------------------------------------------------------- needs preconditions

Deno.test({
  name: `gcs fencing: 20 racing creates of one key, exactly one wins${
    external ? "" : ` (${NO_ENFORCING_EMULATOR})`
  }`,
  ignore: !external,
  async fn() {
    const st = storage();
    const outs = await Promise.all(
      Array.from({ length: 20 }, (_, i) => st.putIf("lock", enc(`w${i}`), null)),
    );
    const won = outs.filter((o) => o !== undefined);
    assert.deepStrictEqual(won.length, 1);
    assert.deepStrictEqual(
      dec(await st.read("lock")),
      `w${outs.findIndex((o) => o !== undefined)}`,
    );
  },
});

Deno.test({
  name: `gcs fencing: a stale putIf and a stale deleteIf change nothing${
    external ? "" : ` (${NO_ENFORCING_EMULATOR})`
  }`,
  ignore: !external,
  async fn() {
    const st = storage();
    const v1 = (await st.putIf("k", enc("one"), null))!;
    const v2 = (await st.putIf("k", enc("two"), v1))!;
    assert.deepStrictEqual(await st.putIf("k", enc("stale"), v1), undefined);
    assert.deepStrictEqual(await st.readVersioned("k"), { data: enc("two"), version: v2 });
    assert.deepStrictEqual(await st.deleteIf("k", v1), false);
    assert.deepStrictEqual(dec(await st.read("k")), "two");
  },
});

if (external) {
  storageContract("gcs", storage);
} else {
  Deno.test({ name: `gcs storage contract (${NO_ENFORCING_EMULATOR})`, ignore: true, fn() {} });
}

// Registered last, so it runs after every test that uses the server.
Deno.test("gcs emulator: stops cleanly", async () => {
  await gcs.stop();
});
