/**
 * The S3 store of the `file:` engine against a real S3 server (Ceph's RADOS Gateway, see
 * `s3_server.ts`): that the server enforces the preconditions the engine relies on (raw and
 * through the adapter), the storage contract, retries whose first answer was lost, and every
 * error of bad input.
 *
 * Run: `deno test --allow-all tests/cloud/s3_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AwsClient } from "aws4fetch";
import { parseS3Url, S3Storage, type S3StorageOptions } from "../../backends/file/cloud/s3.ts";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { ACCESS_KEY, SECRET_KEY, startRadosGateway } from "./s3_server.ts";
import { storageContract } from "./storage_contract.ts";

const enc = (s: string) => new TextEncoder().encode(s);

// One server for the file, stopped by the last test (and by the kernel if this dies).
const server = await startRadosGateway();
const options = server.options as unknown as S3StorageOptions;
const fresh = () => server.storage(`t-${crypto.randomUUID().slice(0, 8)}`);

const signer = new AwsClient({
  accessKeyId: ACCESS_KEY,
  secretAccessKey: SECRET_KEY,
  service: "s3",
  region: "us-east-1",
  retries: 0,
});

/** A raw, signed request to the run's bucket, bypassing the adapter. */
async function raw(
  method: string,
  key: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; etag: string | null; text: string }> {
  const response = await signer.fetch(`${server.url}/${options.bucket}/${key}`, {
    method,
    headers,
    body: body === undefined ? undefined : enc(body),
  });
  return {
    status: response.status,
    etag: response.headers.get("etag"),
    text: await response.text(),
  };
}

Deno.test("the S3 server enforces the preconditions (raw requests)", async () => {
  const key = `raw-${crypto.randomUUID()}`;
  const creates = await Promise.all(
    Array.from({ length: 20 }, (_, i) => raw("PUT", key, { "if-none-match": "*" }, `w${i}`)),
  );
  const won = creates.filter((r) => r.status === 200);
  assert.deepEqual(won.length, 1, JSON.stringify(creates.map((r) => r.status)));
  for (const r of creates) if (r.status !== 200) assert.deepEqual(r.status, 412);
  const winner = `w${creates.indexOf(won[0])}`;
  assert.deepEqual((await raw("GET", key)).text, winner);
  // Bare ETags: the gateway compares If-Match byte for byte with its unquoted ETag.
  const bare = (etag: string | null) => etag!.replaceAll('"', "");
  const v1 = bare(won[0].etag);
  const second = await raw("PUT", key, { "if-match": v1 }, "second");
  assert.deepEqual(second.status, 200);
  assert(second.etag && bare(second.etag) !== v1);
  const stale = await raw("PUT", key, { "if-match": v1 }, "stale");
  assert.deepEqual(stale.status, 412);
  assert.deepEqual((await raw("GET", key)).text, "second");
  const absent = await raw("PUT", `${key}-none`, { "if-match": v1 }, "x");
  assert(absent.status === 412 || absent.status === 404, String(absent.status));
  assert.deepEqual((await raw("GET", `${key}-none`)).status, 404);
});

// Through the adapter, the same races (creates, stale putIf and deleteIf, renames of one
// version) are the storage contract's.
storageContract("s3", fresh);

// --- retries ---------------------------------------------------------------------------

/**
 * A proxy to the server that passes each request on and, for the requests `lose` picks,
 * throws the answer away and answers 503 instead: a write that happened but whose answer was
 * lost. It keeps the Host header the request was signed for.
 */
function lossyProxy(lose: (request: Request, n: number) => boolean) {
  let n = 0;
  const proxy = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const url = new URL(request.url);
    const body = request.body ? new Uint8Array(await request.arrayBuffer()) : undefined;
    const headers = new Headers(request.headers);
    // The signature covers the host the client saw (the proxy's); the gateway checks it
    // against the Host header, which fetch sets from the target URL.
    const response = await fetch(new URL(url.pathname + url.search, server.url), {
      method: request.method,
      headers,
      body,
    });
    const bytes = new Uint8Array(await response.arrayBuffer());
    if (lose(request, n++)) return new Response("lost", { status: 503 });
    return new Response(request.method === "HEAD" ? null : bytes, {
      status: response.status,
      headers: response.headers,
    });
  });
  const endpoint = `http://127.0.0.1:${proxy.addr.port}`;
  return {
    endpoint,
    storage: (prefix: string) => new S3Storage({ ...options, endpoint, prefix }),
    [Symbol.asyncDispose]: () => proxy.shutdown(),
  };
}

Deno.test("a server that keeps failing is reported after the retries", async () => {
  await using proxy = lossyProxy(() => true);
  const st = proxy.storage("down");
  await assert.rejects(
    () => st.writeAtomic("k", enc("x")),
    (e: unknown) =>
      e instanceof OmniQError && /PUT k failed: HTTP 503/.test(e.message) &&
      e.message.includes("s3://"),
  );
});

Deno.test("no server at the endpoint: an error naming the store and the key", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const st = new S3Storage({ ...options, endpoint: `http://127.0.0.1:${port}`, timeoutMs: 2_000 });
  await assert.rejects(
    () => st.read("some/key"),
    (e: unknown) =>
      e instanceof OmniQError && e.message.includes("GET some/key failed after") &&
      e.message.includes(`s3://${options.bucket}`),
  );
});

Deno.test("a missing bucket and a wrong secret are clear errors", async () => {
  const missing = new S3Storage({ ...options, bucket: "no-such-bucket-here" });
  await assert.rejects(
    () => missing.read("k"),
    (e: unknown) => e instanceof OmniQError && /HTTP 404 NoSuchBucket/.test(e.message),
  );
  await assert.rejects(() => missing.list(""), /NoSuchBucket/);
  const wrong = new S3Storage({ ...options, secretAccessKey: "not-the-secret" });
  await assert.rejects(
    () => wrong.writeAtomic("k", enc("x")),
    (e: unknown) => e instanceof OmniQError && /HTTP 403 SignatureDoesNotMatch/.test(e.message),
  );
  const unknown = new S3Storage({ ...options, accessKeyId: "nobody" });
  await assert.rejects(() => unknown.read("k"), /HTTP 403 InvalidAccessKeyId/);
});

Deno.test("parseS3Url reads bucket, prefix, endpoint, region and path style", () => {
  assert.deepEqual(parseS3Url("s3://tasks"), { bucket: "tasks" });
  assert.deepEqual(parseS3Url("s3://tasks/prod/main/"), { bucket: "tasks", prefix: "prod/main" });
  assert.deepEqual(
    parseS3Url("s3://tasks/p?endpoint=http://127.0.0.1:9000&region=eu-west-1&path_style=false"),
    {
      bucket: "tasks",
      prefix: "p",
      endpoint: "http://127.0.0.1:9000",
      region: "eu-west-1",
      pathStyle: false,
    },
  );
});

Deno.test("parseS3Url refuses bad URLs, naming what is wrong", () => {
  const cases: [string, RegExp][] = [
    ["az://c/p", /expected a URL s3:\/\/bucket\/prefix/],
    ["s3://Bad_Bucket/p", /bucket/],
    ["s3://ab", /bucket/],
    ["s3://tasks/a/../b", /prefix/],
    ["s3://tasks/a//b", /prefix/],
    ["s3://key:secret@tasks/p", /credentials do not belong in the URL/],
    ["s3://tasks/p?regoin=x", /unknown parameter "regoin" \(did you mean "region"\?\)/],
    ["s3://tasks/p?region=a&region=b", /"region" given twice/],
    ["s3://tasks/p?path_style=yes", /path_style: expected true or false/],
    ["s3://tasks/p?endpoint=ftp://x", /endpoint/],
    ["s3://tasks/p#frag", /fragment/],
  ];
  for (const [url, message] of cases) {
    assert.throws(() => parseS3Url(url), (e: unknown) => {
      assert(e instanceof ConfigError, `${url}: ${e}`);
      assert.match(e.message, message, url);
      return true;
    });
  }
});

Deno.test("the constructor checks its options key by key", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ ...options, bucket: undefined }, /s3\.bucket/],
    [{ ...options, accessKeyId: undefined }, /s3\.accessKeyId/],
    [{ ...options, secretAccessKey: "" }, /s3\.secretAccessKey/],
    [{ ...options, timeoutMs: -1 }, /s3\.timeoutMs/],
    [{ ...options, pathStyle: "yes" }, /s3\.pathStyle/],
    [{ ...options, endpont: "x" }, /endpont/],
  ];
  for (const [bad, message] of cases) {
    assert.throws(
      () => new S3Storage(bad as unknown as S3StorageOptions),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
      JSON.stringify(bad),
    );
  }
  // No credential ever shows in the store's location.
  const st = new S3Storage(options);
  assert(!st.location.includes(SECRET_KEY) && !st.location.includes(ACCESS_KEY));
});

Deno.test("the S3 server stops cleanly", async () => {
  await server.stop();
  await assert.rejects(() => Deno.stat(server.dir), Deno.errors.NotFound);
});
