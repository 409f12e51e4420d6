/**
 * The NATS JetStream engine's entry in the registry: `nats://` URLs, and the object form
 * `{ nats: { servers, token, stream, bucket, … } }` (the fields of `NatsOptions`).
 *
 * @module
 */

import type { EngineEntry } from "../../src/registry.ts";

/** The registry entry of the NATS engine. */
export const natsEngine: EngineEntry = {
  name: "nats",
  schemes: ["nats"],
  options: {
    servers: "servers",
    token: "string",
    user: "string",
    pass: "string",
    prefix: "string",
    stream: "string",
    bucket: "string",
    resultsBucket: "string",
    timeout: "positive",
  },
  async openUrl(url) {
    const { openNats } = await import("./mod.ts");
    return await openNats(url);
  },
  async openOptions(options) {
    const { openNats } = await import("./mod.ts");
    return await openNats(options);
  },
};
