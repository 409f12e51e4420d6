// A YAML file that gives PostgreSQL, Redis and NATS stores as options (host, port, user …)
// instead of URLs opens working queues on the test servers.
import assert from "node:assert/strict";
import { defineTask, loadConfig, OmniQ } from "../mod.ts";
import { openNats } from "../backends/nats/mod.ts";
import { dropSchema, freshSchema, postgresUrl } from "./fixtures/postgres.ts";
import { dropPrefix, freshPrefix, redisUrl } from "./fixtures/redis.ts";
import { testServerUrl } from "./servers.ts";

const double = defineTask("config-engines.double", (n: number) => n * 2);

/** Open a queue from `yaml`, run one task through it, and check its result and events. */
async function roundTrip(yaml: string[]): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-engines-" });
  try {
    const file = `${dir}/omniq.yaml`;
    await Deno.writeTextFile(file, yaml.join("\n"));
    await using q = await OmniQ.open(await loadConfig(file));
    const id = await q.enqueue(double, [21]);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id, { timeout: "5s" }), 42);
    const types: string[] = [];
    for await (const e of q.events({ taskId: id })) types.push(e.type);
    assert.deepEqual(types, ["enqueued", "started", "completed"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("config: postgres given as options in YAML", async () => {
  const url = new URL(postgresUrl());
  const schema = freshSchema("omniq_cfg");
  try {
    await roundTrip([
      "backend:",
      "  postgres:",
      `    host: ${url.hostname}`,
      `    port: ${url.port}`,
      `    database: ${url.pathname.slice(1)}`,
      `    user: ${decodeURIComponent(url.username)}`,
      `    password: "${decodeURIComponent(url.password)}"`,
      `    schema: ${schema}`,
      "    pool: 4",
    ]);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("config: redis given as options in YAML", async () => {
  const url = new URL(redisUrl());
  const prefix = freshPrefix("omniq-cfg");
  try {
    await roundTrip([
      "backend:",
      `  redis: { host: "${url.hostname}", port: ${url.port}, db: 0, prefix: "${prefix}" }`,
    ]);
  } finally {
    await dropPrefix(prefix);
  }
});

Deno.test("config: nats given as options in YAML", async () => {
  const url = new URL(testServerUrl("nats"));
  const prefix = `cfg_${crypto.randomUUID().replaceAll("-", "")}`;
  try {
    await roundTrip([
      "backend:",
      "  nats:",
      `    servers: ["${url.host}"]`,
      `    prefix: ${prefix}`,
    ]);
  } finally {
    const backend = await openNats({ servers: url.host, prefix });
    await backend.destroy();
  }
});
