// Bad input: each is refused with an error that names the option, and nothing is stored.

import assert from "node:assert/strict";
import { ConfigError, type EnqueueOptions, OmniQ, SerializationError } from "../../mod.ts";
import { type Case, totalTasks } from "./harness.ts";
import { echo } from "./tasks.ts";

/** Expect `attempt` to throw a `type` whose message matches `pattern`, storing nothing. */
async function refused(
  q: OmniQ,
  attempt: () => Promise<unknown>,
  type: typeof ConfigError | typeof SerializationError,
  pattern: RegExp,
): Promise<void> {
  const before = await totalTasks(q);
  await assert.rejects(attempt, (e: unknown) => {
    assert.ok(e instanceof type, `expected a ${type.name}, got ${e}`);
    assert.match(e.message, pattern);
    return true;
  });
  assert.equal(await totalTasks(q), before, "nothing was stored");
}

class Point {
  constructor(readonly x: number) {}
}

export const badInputCases: Case[] = [
  {
    name: "a priority outside the integers 0-9 is refused",
    async fn({ open }) {
      await using q = await open();
      for (const priority of [10, -1, 1.5, "5" as unknown as number, Number.NaN]) {
        await refused(q, () => q.enqueue(echo, [1], { priority }), ConfigError, /priority/);
      }
      await refused(
        q,
        () => q.enqueueMany([{ task: echo, args: [1] }, { task: echo, args: [2], priority: 10 }]),
        ConfigError,
        /items\[1\]\.priority/,
      );
    },
  },
  {
    name: "a bad duration is refused, naming the option",
    async fn({ open }) {
      await using q = await open();
      await refused(q, () => q.enqueue(echo, [1], { delay: "soon" }), ConfigError, /delay/);
      await refused(
        q,
        () => q.enqueue(echo, [1], { timeout: "5 minutes" }),
        ConfigError,
        /timeout/,
      );
      await refused(q, () => q.enqueue(echo, [1], { ttl: -5 }), ConfigError, /ttl/);
      await refused(
        q,
        () => q.enqueue(echo, [1], { resultTtl: "1 day" }),
        ConfigError,
        /resultTtl/,
      );
      await refused(
        q,
        () => q.enqueue(echo, [1], { backoff: { type: "fixed", delay: "often" } }),
        ConfigError,
        /backoff/,
      );
      await refused(
        q,
        () => q.enqueue(echo, [1], { runAt: "tomorrow" as unknown as Date }),
        ConfigError,
        /runAt/,
      );
    },
  },
  {
    name: "an unknown option is refused with the nearest known name",
    async fn({ open }) {
      await using q = await open();
      await refused(
        q,
        // @ts-expect-error: a misspelled option does not compile either
        () => q.enqueue(echo, [1], { priorty: 5 }),
        ConfigError,
        /priorty.*"priority"/,
      );
      await refused(
        q,
        () => q.enqueue(echo, [1], { dependOn: ["x"] } as EnqueueOptions),
        ConfigError,
        /dependOn.*"dependsOn"/,
      );
      await refused(q, () => q.enqueue(echo, [1], { retries: 1.5 }), ConfigError, /retries/);
    },
  },
  {
    name: "arguments must be an array of values the codec can carry",
    async fn({ open }) {
      await using q = await open();
      // @ts-expect-error: arguments that are not an array do not compile either
      await refused(q, () => q.enqueue(echo, "x"), ConfigError, /args/);
      await refused(q, () => q.enqueue(echo, [() => 1]), SerializationError, /function/);
      await refused(q, () => q.enqueue(echo, [Symbol("s")]), SerializationError, /symbol/);
      await refused(q, () => q.enqueue(echo, [new Point(1)]), SerializationError, /Point/);
      await refused(
        q,
        () => q.enqueue(echo, [{ nested: { deep: [() => 1] } }]),
        SerializationError,
        /nested/,
      );
    },
  },
  {
    name: "an unknown URL scheme or config key is refused at open",
    async fn({ open }) {
      await using q = await open(); // the suite's store works; the bad ones below do not open
      assert.ok(q);
      await assert.rejects(
        OmniQ.open("bogus://somewhere"),
        (e: unknown) => e instanceof ConfigError && /bogus/.test(e.message),
      );
      await assert.rejects(
        OmniQ.open({ queue: "nope:x", results: "memory:", events: "memory:" }),
        (e: unknown) => e instanceof ConfigError && /queue/.test(e.message),
      );
      await assert.rejects(
        // @ts-expect-error: a misspelled worker option does not compile either
        OmniQ.open({ backend: "memory:", worker: { concurency: 2 } }),
        (e: unknown) => e instanceof ConfigError && /concurrency/.test(e.message),
      );
      await assert.rejects(
        OmniQ.open({ backend: "memory:", defaults: { keepCompleted: "forever" } }),
        (e: unknown) => e instanceof ConfigError && /keepCompleted/.test(e.message),
      );
    },
  },
  {
    name: "bad worker options are refused, naming the option",
    async fn({ open }) {
      await using q = await open();
      const refusedWorker = (options: Parameters<typeof q.worker>[0], pattern: RegExp) =>
        assert.throws(
          () => q.worker(options),
          (e: unknown) => e instanceof ConfigError && pattern.test(e.message),
        );
      refusedWorker({ concurrency: 0 }, /concurrency/);
      refusedWorker({ concurrency: 1.5 }, /concurrency/);
      refusedWorker({ queues: [] }, /queues/);
      refusedWorker({ queues: [""] }, /queues/);
      refusedWorker({ lease: "forever" }, /lease/);
      await assert.rejects(
        q.run({ until: "idle", concurrency: -1 }),
        (e: unknown) => e instanceof ConfigError && /concurrency/.test(e.message),
      );
    },
  },
];
