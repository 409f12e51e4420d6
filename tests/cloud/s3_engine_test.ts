/**
 * The `file:` engine on `s3://` against a real S3 server (Ceph's RADOS Gateway, see
 * `s3_server.ts`): the conformance suite twice, two processes exactly once, a SIGKILL mid-run,
 * and the URL form with credentials from the environment through `configFromEnv`.
 *
 * Run: `deno task test:cloud tests/cloud/s3_engine_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configFromEnv, defineTask, OmniQ, resolveConfig } from "../../mod.ts";
import { ConfigError } from "../../src/errors.ts";
import { ACCESS_KEY, SECRET_KEY, startRadosGateway } from "./s3_server.ts";
import { cloudEngineSuite } from "./engine_suite.ts";

const server = await startRadosGateway();
const { bucket } = server.options as { bucket: string };

cloudEngineSuite(server, { engine: "s3", processes: true });

defineTask("s3-url-add", (a: number, b: number) => a + b);

Deno.test("s3: a URL takes its credentials from the environment through configFromEnv", async () => {
  const env = {
    OMNIQ_BACKEND: `s3://${bucket}/url-${crypto.randomUUID().slice(0, 8)}?endpoint=${server.url}`,
    AWS_ACCESS_KEY_ID: ACCESS_KEY,
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
  };
  const config = configFromEnv({ env });
  assert.deepEqual(Object.keys(config.backend as object), ["s3"]);
  await using q = await OmniQ.open(config);
  const id = await q.enqueue("s3-url-add", [2, 3]);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id), 5);
});

Deno.test("s3: OmniQ.open never reads the environment: a URL without credentials is refused", async () => {
  await assert.rejects(
    () => OmniQ.open(`s3://${bucket}/p?endpoint=${server.url}`),
    (e: unknown) =>
      e instanceof ConfigError && /s3: no credentials/.test(e.message) &&
      e.message.includes("configFromEnv"),
  );
  // resolveConfig({ env: true }) is the way in for a URL given in code.
  const config = await resolveConfig({ code: `s3://${bucket}/p?endpoint=${server.url}` });
  assert.equal(typeof config.backend, "string");
});

Deno.test("s3: wrong credentials and a missing bucket fail at open, naming the store", async () => {
  const base = server.options as Record<string, unknown>;
  await assert.rejects(
    () => OmniQ.open({ backend: { s3: { ...base, secretAccessKey: "wrong", prefix: "w" } } }),
    /SignatureDoesNotMatch/,
  );
  await assert.rejects(
    () => OmniQ.open({ backend: { s3: { ...base, bucket: "no-such-bucket-x", prefix: "m" } } }),
    /NoSuchBucket/,
  );
  await assert.rejects(
    () => OmniQ.open({ backend: { s3: { ...base, prefix: "a/../b" } } }),
    (e: unknown) => e instanceof ConfigError && /prefix/.test(e.message),
  );
  await assert.rejects(
    () => OmniQ.open({ backend: { s3: { ...base, secretKey: "x" } } }),
    (e: unknown) => e instanceof ConfigError && /secretKey/.test(e.message),
  );
});

Deno.test("s3: the server stops cleanly", () => server.stop());
