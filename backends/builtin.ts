/**
 * The engines OmniQ ships, registered with the core: importing this module (as `mod.ts`
 * does) makes `memory:`, `sqlite:`, `file:`, `kv:`, `postgres:`, `redis:` and `nats:`
 * open through `OmniQ.open`. Each engine's code loads only when a store of it opens.
 *
 * @module
 */

import { registerEngine } from "../src/registry.ts";
import { azureEngine, gcsEngine, s3Engine } from "./file/cloud/engines.ts";
import { fileEngine } from "./file/engine.ts";
import { kvEngine } from "./kv/engine.ts";
import { memoryEngine } from "./memory/engine.ts";
import { natsEngine } from "./nats/engine.ts";
import { postgresEngine } from "./postgres/engine.ts";
import { redisEngine } from "./redis/engine.ts";
import { sqliteEngine } from "./sqlite/engine.ts";

for (
  const engine of [
    memoryEngine,
    sqliteEngine,
    fileEngine,
    kvEngine,
    postgresEngine,
    redisEngine,
    natsEngine,
    s3Engine,
    azureEngine,
    gcsEngine,
  ]
) {
  registerEngine(engine);
}
