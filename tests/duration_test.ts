import assert from "node:assert/strict";
import { ConfigError, parseDuration } from "../mod.ts";
import { resolveBackoff, retryDelay } from "../src/options.ts";

Deno.test("duration: units and numbers", () => {
  assert.equal(parseDuration("250ms"), 250);
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("5m"), 300_000);
  assert.equal(parseDuration("1h"), 3_600_000);
  assert.equal(parseDuration("2d"), 172_800_000);
  assert.equal(parseDuration("1.5s"), 1_500);
  assert.equal(parseDuration(" 10 s "), 10_000);
  assert.equal(parseDuration(0), 0);
  assert.equal(parseDuration(1234), 1234);
});

Deno.test("duration: bad values name the option and what was expected", () => {
  for (const bad of ["soon", "5 minutes", "-1s", "1w", "", "s", "1e3ms"]) {
    assert.throws(() => parseDuration(bad, "delay"), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match((e as Error).message, /^delay: expected a duration such as "250ms"/);
      assert.ok((e as Error).message.includes(JSON.stringify(bad)));
      return true;
    });
  }
  for (const bad of [-1, NaN, Infinity]) {
    assert.throws(() => parseDuration(bad, "ttl"), /ttl: expected a non-negative number/);
  }
  // deno-lint-ignore no-explicit-any
  assert.throws(() => parseDuration({} as any, "timeout"), /timeout: expected a duration/);
});

Deno.test("backoff: exponential doubles from the base up to the cap, jitter within ±20%", () => {
  const b = resolveBackoff(undefined, "backoff");
  assert.deepEqual(b, { type: "exponential", delay: 1000, max: 3_600_000, jitter: 0.2 });
  const mid = () => 0.5; // no spread
  assert.equal(retryDelay(b, 1, mid), 1000);
  assert.equal(retryDelay(b, 2, mid), 2000);
  assert.equal(retryDelay(b, 5, mid), 16000);
  assert.equal(retryDelay(b, 40, mid), 3_600_000);
  assert.equal(retryDelay(b, 1, () => 0), 800);
  assert.equal(retryDelay(b, 1, () => 0.999999), 1200);
});

Deno.test("backoff: fixed, a bare duration, and bad shapes", () => {
  const fixed = resolveBackoff({ type: "fixed", delay: "2s", jitter: 0 }, "backoff");
  assert.equal(retryDelay(fixed, 1), 2000);
  assert.equal(retryDelay(fixed, 7), 2000);
  assert.equal(resolveBackoff("250ms", "backoff").delay, 250);
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => resolveBackoff({ type: "linear", delay: 1 } as any, "backoff"),
    /backoff\.type/,
  );
  assert.throws(() => resolveBackoff({ type: "fixed", delay: 1, jitter: 2 }, "backoff"), /jitter/);
  // deno-lint-ignore no-explicit-any
  assert.throws(() => resolveBackoff({ type: "fixed", dealy: 1 } as any, "backoff"), /"delay"/);
});
