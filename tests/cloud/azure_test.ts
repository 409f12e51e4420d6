/**
 * The Azure Blob store of the `file:` engine against a real Azurite: that the emulator
 * enforces the preconditions the engine relies on (raw and through the adapter), the
 * storage contract, retries whose first answer was lost, and every error of bad input.
 *
 * Run: `deno test --allow-all tests/cloud/azure_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  azureOptionsFromEnv,
  AzureStorage,
  type AzureStorageOptions,
  parseAzureUrl,
  signSharedKey,
} from "../../backends/file/cloud/azure.ts";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { fromBase64, toBase64 } from "../../src/kit/encoding.ts";
import { DEV_ACCOUNT, DEV_ACCOUNT_KEY, startAzurite } from "./azure_server.ts";
import { storageContract } from "./storage_contract.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);

// One emulator for the file, stopped by the last test (and by the kernel if this dies).
const server = await startAzurite();
const options = server.options as unknown as AzureStorageOptions;
const fresh = () => server.storage(`t-${crypto.randomUUID().slice(0, 8)}`);

/** A raw, signed request to the run's container, bypassing the adapter. */
async function raw(
  method: string,
  name: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; code: string | null; etag: string | null; text: string }> {
  const url = new URL(`${options.endpoint}/${options.container}/${name}`);
  const h = new Headers(headers);
  const bytes = body === undefined ? undefined : enc(body);
  await signSharedKey(
    { method, url, headers: h, contentLength: bytes?.length },
    { account: DEV_ACCOUNT, accountKey: DEV_ACCOUNT_KEY },
  );
  const response = await fetch(url, { method, headers: h, body: bytes });
  return {
    status: response.status,
    code: response.headers.get("x-ms-error-code"),
    etag: response.headers.get("etag"),
    text: await response.text(),
  };
}

Deno.test("azurite enforces the preconditions (raw REST calls)", async () => {
  const key = `raw-${crypto.randomUUID()}`;
  const block = { "x-ms-blob-type": "BlockBlob" };
  const creates = await Promise.all(
    Array.from(
      { length: 20 },
      (_, i) => raw("PUT", key, { ...block, "if-none-match": "*" }, `w${i}`),
    ),
  );
  const won = creates.filter((r) => r.status === 201);
  assert.deepEqual(won.length, 1, JSON.stringify(creates.map((r) => r.status)));
  for (const r of creates) {
    if (r.status !== 201) assert.deepEqual([r.status, r.code], [409, "BlobAlreadyExists"]);
  }
  const winner = `w${creates.indexOf(won[0])}`;
  const v1 = won[0].etag!;
  const v2 = (await raw("PUT", key, { ...block, "if-match": v1 }, "second")).etag!;
  assert(v2 && v2 !== v1);
  const stale = await raw("PUT", key, { ...block, "if-match": v1 }, "stale");
  assert.deepEqual([stale.status, stale.code], [412, "ConditionNotMet"]);
  assert.deepEqual((await raw("GET", key)).text, "second");
  const staleDelete = await raw("DELETE", key, { "if-match": v1 });
  assert.deepEqual([staleDelete.status, staleDelete.code], [412, "ConditionNotMet"]);
  assert.deepEqual((await raw("GET", key)).text, "second");
  assert.deepEqual((await raw("DELETE", key, { "if-match": v2 })).status, 202);
  assert.deepEqual((await raw("GET", key)).status, 404);
  assert.notDeepEqual(winner, "second");
});

Deno.test("azurite enforces the preconditions (through the adapter)", async () => {
  const st = fresh();
  const outs = await Promise.all(
    Array.from({ length: 20 }, (_, i) => st.putIf("lock", enc(`w${i}`), null)),
  );
  const won = outs.filter((v) => v !== undefined);
  assert.deepEqual(won.length, 1);
  assert.deepEqual(dec(await st.read("lock")), `w${outs.indexOf(won[0])}`);
  const v1 = won[0]!;
  const v2 = (await st.putIf("lock", enc("next"), v1))!;
  assert.deepEqual(await st.putIf("lock", enc("stale"), v1), undefined);
  assert.deepEqual(dec(await st.read("lock")), "next");
  assert.deepEqual(await st.deleteIf("lock", v1), false);
  assert.deepEqual(dec(await st.read("lock")), "next");
  assert.deepEqual(await st.versionOf("lock"), v2);
});

storageContract("azure", fresh);

// --- retries ---------------------------------------------------------------------------

/**
 * A proxy to Azurite that passes each request on and, for the requests `lose` picks, throws
 * the answer away and answers 503 instead: a write that happened but whose answer was lost.
 */
function lossyProxy(lose: (request: Request, n: number) => boolean) {
  let n = 0;
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const target = new URL(url.pathname + url.search, server.url);
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const response = await fetch(target, {
      method: request.method,
      headers: request.headers,
      body,
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (lose(request, n++)) return new Response("lost", { status: 503 });
    return new Response(request.method === "HEAD" ? null : bytes, {
      status: response.status,
      headers: response.headers,
    });
  });
  const endpoint = `http://127.0.0.1:${proxy.addr.port}/${DEV_ACCOUNT}`;
  return {
    storage: (prefix: string) => new AzureStorage({ ...options, endpoint, prefix }),
    [Symbol.asyncDispose]: () => proxy.shutdown(),
  };
}

Deno.test("a conditional write whose answer was lost is recognised as done", async () => {
  let lost = 0;
  await using proxy = lossyProxy((r) => r.method !== "GET" && lost++ === 0);
  const st = proxy.storage(`lost-${crypto.randomUUID().slice(0, 8)}`);
  // The create happened, its answer was lost; the retry meets the blob: it holds our bytes.
  const v1 = await st.putIf("k", enc("mine"), null);
  assert(v1 !== undefined);
  assert.deepEqual(dec(await st.read("k")), "mine");
  lost = 0;
  const v2 = await st.putIf("k", enc("mine too"), v1);
  assert(v2 !== undefined && v2 !== v1);
  lost = 0;
  // The delete happened, its answer was lost; the retry finds nothing: it was ours.
  assert.deepEqual(await st.deleteIf("k", v2), true);
  assert.deepEqual(await st.read("k"), undefined);
});

Deno.test("a stale write stays refused when retried", async () => {
  let lost = 0;
  await using proxy = lossyProxy((r) => r.method === "PUT" && lost++ === 0);
  const prefix = `stale-${crypto.randomUUID().slice(0, 8)}`;
  const st = proxy.storage(prefix);
  const direct = server.storage(prefix);
  await direct.writeAtomic("k", enc("theirs"));
  lost = 0;
  assert.deepEqual(await st.putIf("k", enc("mine"), null), undefined);
  assert.deepEqual(dec(await direct.read("k")), "theirs");
});

Deno.test("a server that keeps failing is reported after the retries", async () => {
  await using proxy = lossyProxy(() => true);
  const st = proxy.storage("down");
  await assert.rejects(
    () => st.writeAtomic("k", enc("x")),
    (e: unknown) =>
      e instanceof OmniQError && /write k: HTTP 503/.test(e.message) &&
      e.message.includes("az://"),
  );
});

Deno.test("no server at the endpoint: an error naming the store and the key", async () => {
  const st = new AzureStorage({
    ...options,
    endpoint: `http://127.0.0.1:1/${DEV_ACCOUNT}`,
    timeoutMs: 1_000,
  });
  await assert.rejects(
    () => st.read("tasks/a.json"),
    (e: unknown) =>
      e instanceof OmniQError && /GET tasks\/a\.json: no answer after 5 attempts/.test(e.message),
  );
});

// --- bad input and wrong credentials -----------------------------------------------------

Deno.test("a missing container and a wrong key are clear errors", async () => {
  const missing = new AzureStorage({ ...options, container: "no-such-container" });
  for (
    const op of [() => missing.read("k"), () => missing.list("tasks"), () => missing.modified("k")]
  ) {
    await assert.rejects(
      op,
      /container "no-such-container" does not exist in account devstoreaccount1/,
    );
  }
  const wrong = new AzureStorage({ ...options, accountKey: btoa("not the key") });
  await assert.rejects(
    () => wrong.read("k"),
    (e: unknown) =>
      e instanceof OmniQError && /read k: HTTP 403 AuthorizationFailure/.test(e.message),
  );
});

Deno.test("a connection string reaches the same container", async () => {
  const connectionString = `DefaultEndpointsProtocol=http;AccountName=${DEV_ACCOUNT};` +
    `AccountKey=${DEV_ACCOUNT_KEY};BlobEndpoint=${options.endpoint};`;
  const prefix = `cs-${crypto.randomUUID().slice(0, 8)}`;
  const st = new AzureStorage({ container: options.container, prefix, connectionString });
  await st.writeAtomic("k", enc("via connection string"));
  assert.deepEqual(dec(await server.storage(prefix).read("k")), "via connection string");
  assert.deepEqual(
    st.location,
    `az://${options.container}/${prefix}?account=${DEV_ACCOUNT}&endpoint=${options.endpoint}`,
  );
});

/** An account SAS (version 2019-12-12) for the development account, signed here. */
async function accountSas(permissions: string, key = DEV_ACCOUNT_KEY): Promise<string> {
  const fields = {
    sv: "2019-12-12",
    ss: "b",
    srt: "sco",
    sp: permissions,
    se: "2099-01-01T00:00:00Z",
    spr: "https,http",
  };
  const text = [DEV_ACCOUNT, fields.sp, fields.ss, fields.srt, "", fields.se, "", fields.spr]
    .concat(fields.sv, "").join("\n");
  const hmac = await crypto.subtle.importKey(
    "raw",
    fromBase64(key) as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const sig = toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", hmac, enc(text))));
  return `?${new URLSearchParams({ ...fields, sig })}`;
}

Deno.test("a shared access signature reaches the container; a forged one is refused", async () => {
  const prefix = `sas-${crypto.randomUUID().slice(0, 8)}`;
  const sas = (sasToken: string) =>
    new AzureStorage({
      container: options.container,
      endpoint: options.endpoint,
      sasToken,
      prefix,
    });
  const st = sas(await accountSas("rwdlac"));
  await st.writeAtomic("dir/k", enc("via sas"));
  assert.deepEqual(await st.list("dir"), ["k"]);
  assert.deepEqual(await st.putIf("dir/k", enc("again"), null), undefined);
  assert.deepEqual(dec(await server.storage(prefix).read("dir/k")), "via sas");
  assert(!st.location.includes("sig"), st.location);
  const forged = sas(await accountSas("rwdlac", btoa("not the key")));
  await assert.rejects(
    () => forged.read("dir/k"),
    (e: unknown) => e instanceof OmniQError && /read dir\/k: HTTP 403/.test(e.message),
  );
  const readOnly = sas(await accountSas("rl"));
  assert.deepEqual(dec(await readOnly.read("dir/k")), "via sas");
  await assert.rejects(() => readOnly.writeAtomic("dir/k", enc("no")), /write dir\/k: HTTP 403/);
});

Deno.test("the environment's credentials, one way in", () => {
  const env = (vars: Record<string, string>) => azureOptionsFromEnv((name) => vars[name]);
  assert.deepEqual(env({}), {});
  assert.deepEqual(
    env({ AZURE_STORAGE_CONNECTION_STRING: "AccountName=a;AccountKey=b", AZURE_STORAGE_KEY: "c" }),
    { connectionString: "AccountName=a;AccountKey=b" },
  );
  assert.deepEqual(
    env({
      AZURE_STORAGE_ACCOUNT: "acct1",
      AZURE_STORAGE_KEY: "a2V5",
      AZURE_STORAGE_SAS_TOKEN: "s",
    }),
    { account: "acct1", accountKey: "a2V5" },
  );
  assert.deepEqual(env({ AZURE_STORAGE_ACCOUNT: "acct1", AZURE_STORAGE_SAS_TOKEN: "sig=x" }), {
    account: "acct1",
    sasToken: "sig=x",
  });
});

Deno.test("parseAzureUrl reads container, prefix, account and endpoint", () => {
  assert.deepEqual(parseAzureUrl("az://omniq"), { container: "omniq" });
  assert.deepEqual(parseAzureUrl("az://omniq/a/b/?account=acct1"), {
    container: "omniq",
    prefix: "a/b",
    account: "acct1",
  });
  assert.deepEqual(
    parseAzureUrl("az://my-box/q%201?endpoint=http://127.0.0.1:10000/devstoreaccount1"),
    { container: "my-box", prefix: "q 1", endpoint: "http://127.0.0.1:10000/devstoreaccount1" },
  );
});

Deno.test("parseAzureUrl refuses bad URLs, naming what is wrong", () => {
  const bad: [string, RegExp][] = [
    [
      "s3://bucket",
      /az: expected a URL like az:\/\/container\/prefix\?account=NAME, got "s3:\/\/bucket"/,
    ],
    ["az://", /az: container: expected a container name \(3 to 63 lowercase/],
    ["az://ab", /az: container: invalid container name "ab": expected 3 to 63/],
    ["az://Upper", /invalid container name "Upper"/],
    ["az://a--b", /invalid container name "a--b"/],
    ["az://-abc", /invalid container name "-abc"/],
    ["az://abc-", /invalid container name "abc-"/],
    [`az://${"a".repeat(64)}`, /invalid container name "a{64}"/],
    [
      "az://box/a//b",
      /az: prefix: invalid prefix "a\/\/b": expected folder names separated by single slashes, without "\." or "\.\." segments/,
    ],
    ["az://box/a/../b", /invalid prefix "a\/\.\.\/b"/],
    ["az://box/a/%zz", /az: prefix "a\/%zz": bad percent-encoding/],
    [
      "az://box?acount=x",
      /az: unknown parameter "acount" \(did you mean "account"\?\); expected one of account, endpoint/,
    ],
    ["az://box?region=x", /az: unknown parameter "region"; expected one of account, endpoint/],
    [
      "az://box?account=Bad_Name",
      /az: account: invalid account name "Bad_Name": expected 3 to 24 lowercase letters and digits/,
    ],
    [
      "az://box?endpoint=not%20a%20url",
      /az: endpoint: expected the blob service's URL, e\.g\. https:\/\/ACCOUNT\.blob\.core\.windows\.net or http:\/\/127\.0\.0\.1:10000\/ACCOUNT, got "not a url"/,
    ],
    [
      "az://box?endpoint=ftp://host/x",
      /az: endpoint: expected an http or https URL, got "ftp:\/\/host\/x"/,
    ],
    [
      "az://box?endpoint=http://h/x%3Fsig%3Dsecret",
      /az: endpoint: expected a URL without a query, fragment or user/,
    ],
    ["az://user:secret@box/p", /az: a URL carries no credentials .*: az:\/\/box\/…/],
    ["az://box/p#frag", /az: unexpected fragment "#frag"/],
  ];
  for (const [url, message] of bad) {
    assert.throws(() => parseAzureUrl(url), (e: unknown) => {
      assert(e instanceof ConfigError, `${url}: ${e}`);
      assert.match(e.message, message, url);
      assert(!e.message.includes("secret"), e.message);
      return true;
    });
  }
});

Deno.test("the constructor checks its options key by key", () => {
  const base = { container: "box", account: "acct1", accountKey: btoa("k") };
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ ...base, containr: "x" }, /azure\.containr: unknown option \(did you mean "container"\?\)/],
    [{ ...base, container: undefined }, /azure\.container: expected a container name/],
    [{ ...base, container: "x_y" }, /azure\.container: invalid container name "x_y"/],
    [{ ...base, prefix: "a/./b" }, /azure\.prefix: invalid prefix "a\/\.\/b"/],
    [
      { ...base, prefix: 7 },
      /azure\.prefix: expected a string \(a folder in the container\), got number/,
    ],
    [{ ...base, account: "A" }, /azure\.account: invalid account name "A"/],
    [
      { ...base, accountKey: "not base64!" },
      /azure\.accountKey: expected the account key in base64, got text that is not base64/,
    ],
    [
      { ...base, timeoutMs: 0 },
      /azure\.timeoutMs: expected a positive number of milliseconds, got number/,
    ],
    [
      { ...base, timeoutMs: "5s" },
      /azure\.timeoutMs: expected a positive number of milliseconds, got "5s"/,
    ],
    [
      { ...base, endpoint: "127.0.0.1:10000" },
      /azure\.endpoint: expected the blob service's URL, e\.g\. https:/,
    ],
    [
      { ...base, endpoint: "localhost:10000" },
      /azure\.endpoint: expected an http or https URL, got "localhost:10000"/,
    ],
    [
      { ...base, endpoint: "http://h/a?sv=1&sig=x" },
      /azure\.endpoint: expected a URL without a query, fragment or user .*got "http:\/\/h\/a\?…"/,
    ],
    [
      { container: "box", account: "acct1" },
      /azure: no credentials: set one of accountKey, sasToken or connectionString/,
    ],
    [
      { ...base, sasToken: "sv=1&sig=x" },
      /azure: accountKey and sasToken are both set: set exactly one/,
    ],
    [
      { container: "box", account: "acct1", sasToken: "sv=1" },
      /azure\.sasToken: expected a shared access signature \(a query string with sig=…\), got text without sig=/,
    ],
    [
      { container: "box", accountKey: btoa("k") },
      /azure\.account: no storage account: set account, or an endpoint or connection string that names it/,
    ],
    [
      { container: "box", connectionString: "AccountName=acct1" },
      /azure\.connectionString: expected exactly one of AccountKey and SharedAccessSignature, got neither/,
    ],
    [{
      container: "box",
      connectionString: `AccountName=acct1;AccountKey=${btoa("k")};SharedAccessSignature=sig=x`,
    }, /got both/],
    [
      { container: "box", connectionString: "AccountNme=acct1;AccountKey=a2V5" },
      /azure\.connectionString: unknown field "AccountNme" \(did you mean "AccountName"\?\)/,
    ],
    [
      { container: "box", connectionString: "AccountName" },
      /azure\.connectionString: "AccountName" has no value/,
    ],
    [{
      container: "box",
      connectionString: "DefaultEndpointsProtocol=ftp;AccountName=acct1;AccountKey=a2V5",
    }, /DefaultEndpointsProtocol: expected https or http, got "ftp"/],
    [
      { container: "box", connectionString: "AccountName=acct1;AccountKey=a2V5;BlobEndpoint=nope" },
      /azure\.connectionString: BlobEndpoint: expected the blob service's URL/,
    ],
    [
      {
        container: "box",
        account: "other1",
        connectionString: "AccountName=acct1;AccountKey=a2V5",
      },
      /azure\.account: "other1" differs from the connection string's AccountName "acct1"/,
    ],
  ];
  for (const [opts, message] of bad) {
    assert.throws(() => new AzureStorage(opts as unknown as AzureStorageOptions), (e: unknown) => {
      assert(e instanceof ConfigError, `${JSON.stringify(opts)}: ${e}`);
      assert.match(e.message, message, JSON.stringify(opts));
      return true;
    });
  }
});

Deno.test("the account and endpoint resolve from what is given", () => {
  const key = btoa("k");
  const at = (o: Partial<AzureStorageOptions>) =>
    new AzureStorage({ container: "box", ...o } as AzureStorageOptions).location;
  assert.deepEqual(at({ account: "acct1", accountKey: key }), "az://box?account=acct1");
  assert.deepEqual(
    at({ endpoint: "https://acct2.blob.core.windows.net/", accountKey: key, prefix: "/q/" }),
    "az://box/q?account=acct2",
  );
  assert.deepEqual(
    at({ endpoint: "http://127.0.0.1:10000/devstoreaccount1", sasToken: "?sv=1&sig=x" }),
    "az://box?account=devstoreaccount1&endpoint=http://127.0.0.1:10000/devstoreaccount1",
  );
  assert.deepEqual(
    at({
      connectionString: `AccountName=acct3;AccountKey=${key};EndpointSuffix=core.chinacloudapi.cn`,
    }),
    "az://box?account=acct3&endpoint=https://acct3.blob.core.chinacloudapi.cn",
  );
});

Deno.test("azurite stops cleanly", async () => {
  await server.stop();
  await assert.rejects(() => Deno.stat(server.dir), Deno.errors.NotFound);
});
