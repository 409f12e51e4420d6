/**
 * The `file:` engine on `az://` against Azurite (see `azure_server.ts`): the conformance
 * suite twice, two processes exactly once, a SIGKILL mid-run, and the URL form with the
 * account key from the environment through `configFromEnv`.
 *
 * Run: `deno task test:cloud tests/cloud/azure_engine_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { configFromEnv, defineTask, OmniQ } from "../../mod.ts";
import { DEV_ACCOUNT, DEV_ACCOUNT_KEY, startAzurite } from "./azure_server.ts";
import { cloudEngineSuite } from "./engine_suite.ts";

const server = await startAzurite();
const { container, endpoint } = server.options as { container: string; endpoint: string };

cloudEngineSuite(server, { engine: "azure", processes: true });

defineTask("az-url-add", (a: number, b: number) => a + b);

Deno.test("azure: a URL takes its key from the environment through configFromEnv", async () => {
  const env = {
    OMNIQ_BACKEND: `az://${container}/url-${crypto.randomUUID().slice(0, 8)}?endpoint=${endpoint}`,
    AZURE_STORAGE_ACCOUNT: DEV_ACCOUNT,
    AZURE_STORAGE_KEY: DEV_ACCOUNT_KEY,
  };
  const config = configFromEnv({ env });
  assert.deepEqual(Object.keys(config.backend as object), ["azure"]);
  await using q = await OmniQ.open(config);
  const id = await q.enqueue("az-url-add", [2, 3]);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id), 5);
});

Deno.test("azure: a wrong key and a missing container fail at open, naming the store", async () => {
  const base = server.options as Record<string, unknown>;
  const wrongKey = btoa("not the key at all, but base64 all the same");
  await assert.rejects(
    () => OmniQ.open({ backend: { azure: { ...base, accountKey: wrongKey, prefix: "w" } } }),
    /az:\/\/.*403/,
  );
  await assert.rejects(
    () =>
      OmniQ.open({ backend: { azure: { ...base, container: "no-such-container", prefix: "m" } } }),
    /ContainerNotFound/,
  );
});

Deno.test("azure: the server stops cleanly", () => server.stop());
