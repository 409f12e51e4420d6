/**
 * The test entry point behind `deno task test`: start real PostgreSQL, Redis and NATS
 * JetStream servers on 127.0.0.1 (in parallel, installing a missing one's Debian package as
 * root), run `deno test` with their URLs in the environment, stop them, and exit with the
 * tests' exit code.
 *
 * A server whose URL is already in the environment (`OMNIQ_TEST_POSTGRES_URL`,
 * `OMNIQ_TEST_REDIS_URL`, `OMNIQ_TEST_NATS_URL`) is used as given and not started. Arguments
 * go to `deno test` after its flags; with none, it runs `tests/`.
 *
 * For a Redis server it started, the runner also serves a restart endpoint on 127.0.0.1 and
 * names it in `OMNIQ_TEST_REDIS_CONTROL`, so a test can check durability across a restart
 * (`restartRedisFromEnv` in `tests/servers.ts`) while the runner stays the owner of the process.
 *
 * @example Run one file
 * ```sh
 * deno task test tests/servers_test.ts
 * ```
 *
 * @module
 */

import {
  type RedisServer,
  startNats,
  startPostgres,
  startRedis,
  TEST_ENV,
  type TestServer,
} from "./servers.ts";

const TEST_FLAGS = [
  "--allow-read",
  "--allow-write",
  "--allow-run",
  "--allow-env",
  "--allow-net=127.0.0.1",
  "--allow-sys",
  "--unstable-kv",
  "--trace-leaks",
];

type Kind = "postgres" | "redis" | "nats";
const KINDS: Kind[] = ["postgres", "redis", "nats"];
const START: Record<Kind, () => Promise<TestServer>> = {
  postgres: startPostgres,
  redis: startRedis,
  nats: startNats,
};

const env: Record<string, string> = {};
const started: Partial<Record<Kind, TestServer>> = {};
const given = KINDS.filter((kind) => Deno.env.get(TEST_ENV[kind]));
const toStart = KINDS.filter((kind) => !given.includes(kind));

const results = await Promise.allSettled(toStart.map((kind) => START[kind]()));
const failures: string[] = [];
results.forEach((result, i) => {
  const kind = toStart[i];
  if (result.status === "fulfilled") started[kind] = result.value;
  else failures.push(`${kind}: ${errorText(result.reason)}`);
});
if (failures.length > 0) {
  await stopAll();
  console.error(`tests/run.ts: could not start the test servers\n${failures.join("\n")}`);
  Deno.exit(1);
}
for (const kind of KINDS) env[TEST_ENV[kind]] = started[kind]?.url ?? Deno.env.get(TEST_ENV[kind])!;

const control = started.redis ? serveRedisControl(started.redis as RedisServer) : undefined;
if (control) env[TEST_ENV.redisControl] = control.url;

const parts = [
  ...toStart.map((kind) => `${kind} at ${started[kind]!.url}`),
  ...given.map((kind) => `${kind} at ${env[TEST_ENV[kind]]} (from ${TEST_ENV[kind]})`),
];
console.error(
  `tests/run.ts: started ${toStart.length ? toStart.join(", ") : "no servers"}; using ${
    parts.join(", ")
  }`,
);

// Flags alone (e.g. `--filter x`) still run the tests/ directory, without the cloud stores'
// suite (tests/cloud/: emulators, `deno task test:cloud`) and the browser's (tests/browser/:
// Chromium, `deno task test:browser`, which needs --allow-all for playwright-core).
const args = Deno.args.some((a) => !a.startsWith("-"))
  ? Deno.args
  : [...Deno.args, "--ignore=tests/cloud/,tests/browser/", "tests/"];
const child = new Deno.Command(Deno.execPath(), {
  args: ["test", ...TEST_FLAGS, ...args],
  env,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn();

// Ctrl-C reaches the whole process group; a SIGTERM sent to the runner alone is passed on.
// Either way the runner waits for the tests to end so it can stop the servers itself.
const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
const forward = signals.map((signal) => {
  const listener = () => {
    try {
      child.kill(signal);
    } catch {
      // The tests already ended.
    }
  };
  Deno.addSignalListener(signal, listener);
  return () => Deno.removeSignalListener(signal, listener);
});

const status = await child.status;
forward.forEach((remove) => remove());
await control?.close();
await stopAll();
Deno.exit(status.code);

async function stopAll(): Promise<void> {
  const stops = await Promise.allSettled(Object.values(started).map((server) => server.stop()));
  for (const stop of stops) {
    if (stop.status === "rejected") {
      console.error(`tests/run.ts: stopping a server failed: ${errorText(stop.reason)}`);
    }
  }
}

/** Serve `POST /<token>/redis/restart` on 127.0.0.1; the token keeps other local users out. */
function serveRedisControl(redis: RedisServer): { url: string; close(): Promise<void> } {
  const path = `/${crypto.randomUUID()}/redis/restart`;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    if (req.method !== "POST" || new URL(req.url).pathname !== path) {
      return new Response("not found\n", { status: 404 });
    }
    try {
      await redis.restart();
      return new Response("restarted\n");
    } catch (error) {
      return new Response(`${errorText(error)}\n`, { status: 500 });
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}${path}`,
    close: () => server.shutdown(),
  };
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
