// The conformance suite (tests/conformance/, published as `omniq/engine`) against the
// built npm package under Node's own test runner: `node --test conformance.mjs <engine>`,
// for memory, sqlite, file, postgres, redis or nats. The servers' URLs come from the same
// OMNIQ_TEST_*_URL variables the Deno tests read (tests/run.ts starts the servers); a
// missing one fails the run, it is never skipped.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { runConformance } from "omniq/engine";
import { openNats } from "omniq/nats";
import postgres from "postgres";
import { createClient } from "redis";

function serverUrl(name) {
  const url = process.env[`OMNIQ_TEST_${name.toUpperCase()}_URL`];
  if (!url) throw new Error(`OMNIQ_TEST_${name.toUpperCase()}_URL is not set`);
  return url;
}

const uuid = () => crypto.randomUUID().replaceAll("-", "");

async function tempDir() {
  return await mkdtemp(join(tmpdir(), "omniq_node_"));
}

async function dropRedisPrefix(prefix) {
  const client = createClient({ url: serverUrl("redis") });
  client.on("error", () => {});
  await client.connect();
  try {
    let cursor = "0";
    do {
      const [next, keys] = await client.sendCommand(["SCAN", cursor, "MATCH", `${prefix}*`]);
      cursor = next;
      if (keys.length) await client.sendCommand(["DEL", ...keys]);
    } while (cursor !== "0");
  } finally {
    await client.close();
  }
}

/** A fresh store per case, and how to remove it, for each engine. */
const ENGINES = {
  memory: () => ({ url: `memory:conformance-${uuid()}`, drop: async () => {} }),
  sqlite: async () => {
    const dir = await tempDir();
    return { url: `sqlite:${dir}/omniq.db`, drop: () => rm(dir, { recursive: true }) };
  },
  file: async () => {
    const dir = await tempDir();
    return { url: `file:${dir}/store`, drop: () => rm(dir, { recursive: true }) };
  },
  postgres: () => {
    const schema = `omniq_n_${uuid().slice(0, 16)}`;
    const url = new URL(serverUrl("postgres"));
    url.searchParams.set("schema", schema);
    return {
      url: url.href,
      drop: async () => {
        const sql = postgres(serverUrl("postgres"), { max: 1, onnotice: () => {} });
        try {
          await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        } finally {
          await sql.end({ timeout: 1 });
        }
      },
    };
  },
  redis: () => {
    const prefix = `omniq-node-${uuid()}:`;
    const url = new URL(serverUrl("redis"));
    url.pathname = "/0";
    url.searchParams.set("prefix", prefix);
    return { url: url.href, drop: () => dropRedisPrefix(prefix) };
  },
  nats: () => {
    const url = `${serverUrl("nats")}?prefix=n_${uuid()}`;
    return {
      url,
      drop: async () => {
        const backend = await openNats(url);
        await backend.destroy();
      },
    };
  },
};

const engine = process.argv[2] ?? process.env.OMNIQ_NODE_ENGINE;
const open = ENGINES[engine];
if (!open) throw new Error(`conformance.mjs: name an engine: ${Object.keys(ENGINES).join(", ")}`);

runConformance({
  name: `node ${engine}`,
  store: async () => {
    const { url, drop } = await open();
    return { stores: { backend: url }, [Symbol.asyncDispose]: drop };
  },
  test: (definition) =>
    test(definition.name, { skip: definition.ignore, timeout: 60_000 }, definition.fn),
});
