// Configuration: the same validated result from code, dictionaries, YAML/JSON files and
// OMNIQ_* variables; precedence code > file > environment; errors that name the key.
import assert from "node:assert/strict";
import {
  ConfigError,
  configFromEnv,
  loadConfig,
  OmniQ,
  parseDotenv,
  resolveConfig,
  validateConfig,
} from "../mod.ts";

const ROOT = new URL("../", import.meta.url);

function assertConfigError(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

async function assertConfigRejects(fn: () => Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.match((e as Error).message, message);
    return true;
  });
}

Deno.test("config: omniq.example.yaml loads, and opens a working queue", async () => {
  const config = await loadConfig(new URL("omniq.example.yaml", ROOT), { env: {} });
  assert.equal(config.backend, "sqlite:./omniq.db");
  assert.equal(config.worker?.concurrency, 16);
  assert.deepEqual(config.worker?.queues, ["high", "default", "low"]);
  assert.equal(config.defaults?.resultTtl, "7d");
  assert.equal(config.tasks?.[0], new URL("examples/tasks.ts", ROOT).href);
  const q = await OmniQ.open({ ...config, backend: "memory:" });
  try {
    const id = await q.enqueue("charge", ["cus_9", 900]);
    await q.run({ until: "idle" });
    assert.deepEqual(await q.wait(id), { customer: "cus_9", cents: 900, receipt: "r-cus_9-900" });
  } finally {
    await q.close();
  }
});

Deno.test("config: a URL, an object, a dictionary, YAML, JSON and env give the same config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-" });
  try {
    const expected = {
      queue: "memory:",
      worker: { concurrency: 8, queues: ["high", "default"], lease: "45s", scheduler: false },
      defaults: { retries: 2, priority: 3, timeout: "30s" },
    };
    await Deno.writeTextFile(
      `${dir}/a.yaml`,
      'queue: "memory:"\nworker:\n  concurrency: 8\n  queues: [high, default]\n  lease: 45s\n  scheduler: false\n' +
        "defaults: { retries: 2, priority: 3, timeout: 30s }\n",
    );
    await Deno.writeTextFile(`${dir}/a.json`, JSON.stringify(expected));
    const fromEnv = configFromEnv({
      env: {
        OMNIQ_QUEUE: "memory:",
        OMNIQ_WORKER_CONCURRENCY: "8",
        OMNIQ_WORKER_QUEUES: "high, default",
        OMNIQ_WORKER_LEASE: "45s",
        OMNIQ_WORKER_SCHEDULER: "false",
        OMNIQ_DEFAULTS_RETRIES: "2",
        OMNIQ_DEFAULTS_PRIORITY: "3",
        OMNIQ_DEFAULTS_TIMEOUT: "30s",
        PATH: "/usr/bin",
      },
    });
    const dictionary = JSON.parse(JSON.stringify(expected));
    for (
      const config of [
        validateConfig(expected),
        validateConfig(dictionary),
        await loadConfig(`${dir}/a.yaml`),
        await loadConfig(`${dir}/a.json`),
        fromEnv,
      ]
    ) {
      assert.deepEqual(config, expected);
    }
    assert.deepEqual(validateConfig("memory:"), { backend: "memory:" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: precedence is code > file > environment, key by key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-" });
  try {
    await Deno.writeTextFile(
      `${dir}/c.yaml`,
      'backend: "memory:file"\nworker: { concurrency: 5, lease: 10s }\n',
    );
    const config = await resolveConfig({
      code: { worker: { concurrency: 2 } },
      file: `${dir}/c.yaml`,
      env: configFromEnv({
        env: {
          OMNIQ_BACKEND: "memory:env",
          OMNIQ_WORKER_LEASE: "20s",
          OMNIQ_WORKER_POLL_INTERVAL: "250ms",
          OMNIQ_DEFAULTS_RETRIES: "7",
        },
      }),
    });
    assert.deepEqual(config, {
      backend: "memory:file",
      worker: { concurrency: 2, lease: "10s", pollInterval: "250ms" },
      defaults: { retries: 7 },
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: ${VAR} expands in YAML; a missing one is an error naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-" });
  try {
    await Deno.writeTextFile(
      `${dir}/v.yaml`,
      'queue: ${QUEUE_URL}\nworker: { lease: "${LEASE:-15s}" }\n',
    );
    const config = await loadConfig(`${dir}/v.yaml`, { env: { QUEUE_URL: "memory:x" } });
    assert.deepEqual(config, { queue: "memory:x", worker: { lease: "15s" } });
    await assertConfigRejects(
      () => loadConfig(`${dir}/v.yaml`, { env: {} }),
      /v\.yaml: queue: \$\{QUEUE_URL\} is not set/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: .env files, with the real environment winning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-" });
  try {
    await Deno.writeTextFile(
      `${dir}/.env`,
      '# settings\nexport OMNIQ_QUEUE="memory:dotenv"\nOMNIQ_WORKER_CONCURRENCY=3 # three\nOMNIQ_CODEC=json\n',
    );
    const config = configFromEnv({
      envFile: `${dir}/.env`,
      env: { OMNIQ_WORKER_CONCURRENCY: "9" },
    });
    assert.deepEqual(config, { queue: "memory:dotenv", worker: { concurrency: 9 }, codec: "json" });
    assertConfigError(() => parseDotenv("NOT A LINE", "x.env"), /x\.env:1: expected KEY=value/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("config: bad keys and values name the key path, suggest the nearest key, hide secrets", async () => {
  assertConfigError(
    () => validateConfig({ worker: { concurrency: "ten" } }),
    /^worker\.concurrency: expected a positive integer, got "ten"$/,
  );
  assertConfigError(
    () => validateConfig({ worker: { concurency: 2 } }),
    /^worker\.concurency: unknown key \(did you mean "worker\.concurrency"\?\)/,
  );
  assertConfigError(() => validateConfig({ qeue: "memory:" }), /did you mean "queue"/);
  assertConfigError(
    () => validateConfig({ defaults: { priority: 12 } }),
    /^defaults\.priority: expected an integer from 0 to 9, got 12/,
  );
  assertConfigError(
    () => validateConfig({ worker: { lease: "soon" } }),
    /^worker\.lease: expected a duration/,
  );
  assertConfigError(
    () => validateConfig({ worker: { type: "fiber" } }),
    /^worker\.type: expected one of "async", "thread", "process", got "fiber"/,
  );
  assertConfigError(
    () => validateConfig({ codec: "xml" }),
    /^codec: expected one of "msgpack", "json"/,
  );
  assertConfigError(
    () => validateConfig({ worker: { queues: [] } }),
    /^worker\.queues: expected a non-empty list/,
  );
  try {
    validateConfig({ queue: "mongo://admin:hunter2@db:27017/q" });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(!(e as Error).message.includes("hunter2"), (e as Error).message);
    assert.match((e as Error).message, /admin:\*\*\*@db/);
  }
  assertConfigError(
    () => configFromEnv({ env: { OMNIQ_WORKER_CONCURENCY: "2" } }),
    /OMNIQ_WORKER_CONCURENCY: unknown OmniQ variable \(did you mean OMNIQ_WORKER_CONCURRENCY\?\)/,
  );
  assertConfigError(
    () => configFromEnv({ env: { OMNIQ_WORKER_CONCURRENCY: "ten" } }),
    /^OMNIQ_WORKER_CONCURRENCY \(worker\.concurrency\): expected a positive integer, got "ten"/,
  );
  await assertConfigRejects(
    () => OmniQ.open({ worker: { concurency: 2 } } as never),
    /concurrency/,
  );
  await assertConfigRejects(
    () => loadConfig("omniq.toml"),
    /expected a \.yaml, \.yml or \.json file/,
  );
});

Deno.test("config: a server engine's store as options, checked key by key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-config-" });
  try {
    const file = `${dir}/omniq.yaml`;
    await Deno.writeTextFile(
      file,
      [
        "backend:",
        "  postgres:",
        "    host: db.internal",
        "    port: ${PGPORT}",
        "    user: app",
        "    password: ${PGPASSWORD}",
        "    schema: jobs",
        "    ssl: require",
        "results:",
        "  redis: { host: cache, db: 2, prefix: 'app:', tls: true }",
        "events:",
        "  nats: { servers: [a:4222, b:4222], stream: EV }",
      ].join("\n"),
    );
    const config = await loadConfig(file, { env: { PGPORT: "6543", PGPASSWORD: "12345" } });
    assert.deepEqual(config.backend, {
      postgres: {
        host: "db.internal",
        port: 6543, // a number, though ${PGPORT} expanded to a string
        user: "app",
        password: "12345",
        schema: "jobs",
        ssl: "require",
      },
    });
    assert.deepEqual(config.results, {
      redis: { host: "cache", db: 2, prefix: "app:", tls: true },
    });
    assert.deepEqual(config.events, { nats: { servers: ["a:4222", "b:4222"], stream: "EV" } });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assertConfigError(
    () => validateConfig({ backend: { postgres: { hots: "db" } } }),
    /^backend\.postgres\.hots: unknown key \(did you mean "backend\.postgres\.host"\?\)/,
  );
  assertConfigError(
    () => validateConfig({ queue: { postgress: { host: "db" } } }),
    /^queue\.postgress: unknown engine \(did you mean "postgres"\?\)/,
  );
  assertConfigError(
    () => validateConfig({ backend: { postgres: {}, redis: {} } }),
    /^backend: name one engine, got postgres and redis/,
  );
  assertConfigError(
    () => validateConfig({ backend: { redis: { port: 70000 } } }),
    /^backend\.redis\.port: expected a port number \(1 to 65535\), got 70000/,
  );
  assertConfigError(
    () => validateConfig({ backend: { nats: { servers: [] } } }),
    /^backend\.nats\.servers: expected an address or a list of addresses/,
  );
  assertConfigError(
    () => validateConfig({ backend: { redis: { url: "postgres://u:hunter2@db/x" } } }),
    /^backend\.redis\.url: expected a redis URL, got "postgres:\/\/u:\*\*\*@db\/x"/,
  );
  assertConfigError(
    () => validateConfig({ backend: { postgres: "db" } }),
    /^backend\.postgres: expected an object of postgres options/,
  );
  try {
    validateConfig({ backend: { postgres: { password: ["hunter2"] } } });
    assert.fail("expected a ConfigError");
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.match(
      (e as Error).message,
      /^backend\.postgres\.password: expected a string, got object/,
    );
    assert.ok(!(e as Error).message.includes("hunter2"), (e as Error).message);
  }
  // A higher source's store replaces a lower one whole: options of two engines never mix.
  const merged = await resolveConfig({
    code: { backend: { redis: { host: "cache" } } },
    file: { backend: { postgres: { host: "db" } } },
  });
  assert.deepEqual(merged.backend, { redis: { host: "cache" } });
  await assertConfigRejects(
    () => OmniQ.open({ backend: { redis: { host: "cache", dbb: 1 } } }),
    /did you mean "backend\.redis\.db"/,
  );
});
