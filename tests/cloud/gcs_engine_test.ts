/**
 * The `file:` engine on `gs://` (see `gcs_server.ts`): the conformance suite twice, and, on a
 * server that enforces `ifGenerationMatch` (given in `OMNIQ_TEST_GCS_ENDPOINT`), two
 * processes exactly once and a SIGKILL mid-run.
 *
 * The firebase-tools storage emulator started by default ignores preconditions, so the lock
 * that keeps handles and processes apart does not hold on it. There the probe at open must
 * refuse the store; the suite opens it with `checkPreconditions: false`, and the four
 * conformance cases that race several handles on one queue in the bucket, and the
 * multi-process tests, are left to an enforcing server (they are reported as ignored, with
 * the reason). The fencing itself is the same engine code as on S3 and Azure, where it is
 * tested against enforcing servers; only the adapter differs, and its requests are tested in
 * gcs_test.ts.
 *
 * Run: `deno task test:cloud tests/cloud/gcs_engine_test.ts`.
 *
 * @module
 */

import assert from "node:assert/strict";
import { OmniQ } from "../../mod.ts";
import { ConfigError } from "../../src/errors.ts";
import { startGcs } from "./gcs_server.ts";
import { cloudEngineSuite } from "./engine_suite.ts";

const server = await startGcs();
const enforcing = server.enforcesPreconditions;
const why = `${server.emulator} ignores ifGenerationMatch: handles racing on one queue in ` +
  `the bucket are not kept apart there (set OMNIQ_TEST_GCS_ENDPOINT to an enforcing server)`;

cloudEngineSuite(server, {
  engine: "gcs",
  processes: enforcing,
  extra: enforcing ? {} : { checkPreconditions: false },
  skipInBucket: enforcing ? {} : {
    "three handles ticking one store at once fire each tick exactly once": why,
    "two workers on one store run each task exactly once": why,
    "at most groupConcurrency tasks of a group run at once, across two handles": why,
    "a rate limit holds across two handles, and a limited key does not hold up another": why,
  },
});

Deno.test(
  `gcs: the probe at open ${enforcing ? "accepts" : "refuses"} ${server.emulator}`,
  async () => {
    const open = () =>
      OmniQ.open({
        backend: { gcs: { ...server.options, prefix: `probe-${crypto.randomUUID()}` } },
      });
    if (enforcing) {
      await (await open()).close();
      return;
    }
    await assert.rejects(
      open,
      (e: unknown) =>
        e instanceof ConfigError && /does not enforce conditional writes/.test(e.message),
    );
  },
);

Deno.test("gcs: the server stops cleanly", () => server.stop());
