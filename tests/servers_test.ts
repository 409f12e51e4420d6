// Smoke tests of the servers that tests/run.ts starts: each one answers on its URL, speaking
// its own protocol over raw TCP (no client library), and Redis keeps data across a restart.
// A missing URL fails the test: the suite must never pass without its servers.

import assert from "node:assert/strict";
import { restartRedisFromEnv, tcpExchange, testServerUrl } from "./servers.ts";

const decoder = new TextDecoder();
const line = (bytes: Uint8Array) => bytes.includes(10);

function portOf(url: string): number {
  const port = Number(new URL(url).port);
  assert.ok(port > 0, `expected an explicit port in ${url}`);
  return port;
}

/** A RESP command, e.g. `resp("SET", "k", "v")`. */
function resp(...parts: string[]): string {
  return `*${parts.length}\r\n${parts.map((p) => `$${p.length}\r\n${p}\r\n`).join("")}`;
}

Deno.test("postgres: answers pg_isready and asks for a SCRAM password over TCP", async () => {
  const url = new URL(testServerUrl("postgres"));
  const port = portOf(url.href);
  assert.equal(url.hostname, "127.0.0.1");

  const ready = await new Deno.Command("pg_isready", {
    args: ["-h", url.hostname, "-p", String(port)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(
    ready.success,
    `pg_isready: ${decoder.decode(ready.stdout)}${decoder.decode(ready.stderr)}`,
  );

  // A protocol 3.0 StartupMessage for user omniq, database omniq. A server that requires a
  // password replies AuthenticationSASL ('R', code 10) naming SCRAM-SHA-256.
  const params = new TextEncoder().encode("user\0omniq\0database\0omniq\0\0");
  const startup = new Uint8Array(8 + params.length);
  const view = new DataView(startup.buffer);
  view.setInt32(0, startup.length);
  view.setInt32(4, 196608);
  startup.set(params, 8);
  const reply = await tcpExchange(port, {
    send: startup,
    until: (bytes) =>
      bytes.length >= 5 && bytes.length >= 1 + new DataView(bytes.buffer).getInt32(1),
  });
  assert.equal(String.fromCharCode(reply[0]), "R", `unexpected reply: ${decoder.decode(reply)}`);
  assert.equal(new DataView(reply.buffer).getInt32(5), 10, "expected AuthenticationSASL");
  assert.match(decoder.decode(reply), /SCRAM-SHA-256/);
});

Deno.test("redis: answers PING", async () => {
  const port = portOf(testServerUrl("redis"));
  const reply = await tcpExchange(port, { send: "PING\r\n", until: line });
  assert.equal(decoder.decode(reply), "+PONG\r\n");
});

Deno.test("nats: greets with INFO and has JetStream on", async () => {
  const port = portOf(testServerUrl("nats"));
  const info = decoder.decode(await tcpExchange(port, { until: line }));
  assert.ok(info.startsWith("INFO {"), `expected an INFO line, got ${info}`);
  const fields = JSON.parse(info.slice("INFO ".length));
  assert.equal(fields.jetstream, true, `JetStream is off: ${info}`);
});

// Restarting drops every connection to Redis: this relies on test files running one at a
// time (no --parallel), as tests/run.ts runs them.
Deno.test("redis: data survives a restart (append-only file)", async () => {
  const port = portOf(testServerUrl("redis"));
  const key = `omniq-test:${crypto.randomUUID()}`;
  const set = await tcpExchange(port, { send: resp("SET", key, "v"), until: line });
  assert.equal(decoder.decode(set), "+OK\r\n");
  // appendfsync everysec: give the AOF its fsync before the restart.
  await new Promise((resolve) => setTimeout(resolve, 1100));

  await restartRedisFromEnv();

  const get = await tcpExchange(port, {
    send: resp("GET", key),
    until: (bytes) => {
      // A bulk string ("$1\r\nv\r\n") takes two lines; nil ("$-1") and errors take one.
      const text = decoder.decode(bytes);
      return text.startsWith("$") && !text.startsWith("$-1")
        ? text.split("\r\n").length >= 3
        : text.endsWith("\r\n");
    },
  });
  assert.equal(decoder.decode(get), "$1\r\nv\r\n");
  await tcpExchange(port, { send: resp("DEL", key), until: line });
});
