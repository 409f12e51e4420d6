/**
 * The `file:` engine on `gs://` (see `gcs_server.ts`): the conformance suite twice, and, on a
 * server that enforces `ifGenerationMatch` (given in `OMNIQ_TEST_GCS_ENDPOINT`), two
 * processes exactly once and a SIGKILL mid-run.
 *
 * The firebase-tools storage emulator started by default ignores preconditions, so the lock
 * that keeps several processes apart does not hold on it: the two multi-process tests run
 * only on an enforcing server. The fencing itself is tested on the adapter (gcs_test.ts),
 * and on every other store the same engine code is tested against enforcing servers.
 *
 * Run: `deno task test:cloud tests/cloud/gcs_engine_test.ts`.
 *
 * @module
 */

import { startGcs } from "./gcs_server.ts";
import { cloudEngineSuite } from "./engine_suite.ts";

const server = await startGcs();

cloudEngineSuite(server, { engine: "gcs", processes: server.enforcesPreconditions });

Deno.test("gcs: the server stops cleanly", () => server.stop());
