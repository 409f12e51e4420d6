// An injected clock: TTLs, result TTLs, retention and schedules move with a ManualClock,
// so these cases assert on conditions after moving time, never on sleeps. Run on every
// engine that judges time by the orchestrator's sweep (the embedded ones here).
import assert from "node:assert/strict";
import { ConfigError, defineTask, ManualClock, OmniQ, validateConfig } from "../mod.ts";

const answer = defineTask("clock.answer", () => 42);
const HOUR = 3_600_000;

const engines: [string, () => Promise<{ url: string; [Symbol.asyncDispose](): Promise<void> }>][] =
  [
    ["memory", () =>
      Promise.resolve({
        url: `memory:${crypto.randomUUID()}`,
        [Symbol.asyncDispose]: () => Promise.resolve(),
      })],
    ["sqlite", async () => {
      const dir = await Deno.makeTempDir({ prefix: "omniq-clock-" });
      return {
        url: `sqlite:${dir}/clock.db`,
        [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
      };
    }],
  ];

for (const [engine, fresh] of engines) {
  Deno.test(`clock (${engine}): a task past its ttl expires at the sweep after the clock moves`, async () => {
    await using store = await fresh();
    const clock = new ManualClock();
    await using q = await OmniQ.open({ backend: store.url, clock });
    const id = await q.enqueue(answer, [], { ttl: "1h", delay: "2h" });
    assert.equal((await q.get(id))!.expiresAt!.getTime(), clock.now() + HOUR);
    await q.cleanup();
    assert.equal((await q.get(id))!.state, "scheduled");
    clock.advance(HOUR + 1);
    await q.cleanup();
    assert.equal((await q.get(id))!.state, "expired");
  });

  Deno.test(`clock (${engine}): a result past its resultTtl goes at the sweep after the clock moves`, async () => {
    await using store = await fresh();
    const clock = new ManualClock();
    await using q = await OmniQ.open({ backend: store.url, clock });
    const id = await q.enqueue(answer, [], { resultTtl: "1h" });
    await q.run({ until: "idle" });
    const result = await q.result(id);
    assert.equal(result?.value, 42);
    assert.equal(result!.expiresAt!.getTime(), result!.completedAt.getTime() + HOUR);
    clock.advance(HOUR + 1);
    const report = await q.cleanup();
    assert.equal(report.results, 1);
    assert.equal(await q.result(id), undefined);
  });

  Deno.test(`clock (${engine}): an interval schedule fires when the clock reaches its tick`, async () => {
    await using store = await fresh();
    const clock = new ManualClock();
    await using q = await OmniQ.open({ backend: store.url, clock });
    await q.schedule(answer, [], { every: "1h", id: "hourly" });
    assert.equal(await q.tick(), 1, "an interval schedule's first tick is its start");
    clock.advance(HOUR - 1);
    assert.equal(await q.tick(), 0, "not yet an hour");
    clock.advance(1);
    assert.equal(await q.tick(), 1);
    assert.equal(await q.tick(), 0, "one tick fires once");
    const tasks = await q.list({ task: "clock.answer" });
    assert.deepEqual(tasks.map((t) => t.scheduleId), ["hourly", "hourly"]);
  });
}

Deno.test("clock: a value without now() is refused, naming the key", () => {
  assert.throws(
    () => validateConfig({ backend: "memory:", clock: 5 }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message ===
        "clock: expected a clock (an object with a now() method giving epoch ms), got 5",
  );
});

Deno.test("clock: a ManualClock does not run backwards", () => {
  const clock = new ManualClock(1_000);
  assert.throws(() => clock.advance(-1), RangeError);
  clock.advance(0);
  assert.equal(clock.now(), 1_000);
});
