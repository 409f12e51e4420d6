// Retries, backoff, permanent failures and attempt timeouts.

import assert from "node:assert/strict";
import { TaskFailedError } from "../../mod.ts";
import { type Case, eventsOf, typesOf, until } from "./harness.ts";
import { echo, fail, flaky, gated, openGate, probe, returnsFunction, sleep } from "./tasks.ts";

export const retryCases: Case[] = [
  {
    name: "a task that fails twice then succeeds completes on attempt 3",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(flaky, [key, 2, "ok"], {
        retries: 3,
        backoff: { type: "fixed", delay: 20 },
      });
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), "ok");
      const record = await q.get(id);
      assert.equal(record?.state, "completed");
      assert.equal(record.attempts, 3);
      assert.deepEqual(probe(key).attempts, [1, 2, 3]);
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "retrying",
        "started",
        "retrying",
        "started",
        "completed",
      ]);
      const retrying = events.filter((e) => e.type === "retrying");
      assert.deepEqual(retrying.map((e) => e.attempt), [1, 2]);
      for (const [i, e] of retrying.entries()) {
        const error = e.data?.error as { name: string; message: string } | undefined;
        assert.equal(error?.message, `flaky failure ${i + 1}`);
        assert.equal(error?.name, "Error");
      }
      assert.deepEqual(events.filter((e) => e.type === "started").map((e) => e.attempt), [1, 2, 3]);
    },
  },
  {
    name: "a task that always fails ends failed after retries + 1 attempts",
    async fn({ open, key }) {
      await using q = await open();
      const message = `always ${key}`;
      const id = await q.enqueue(fail, [message], {
        retries: 2,
        backoff: { type: "fixed", delay: 10 },
      });
      await q.run({ until: "idle" });
      assert.equal(probe(message).calls, 3);
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 3);
      assert.equal(record.error?.name, "CustomError");
      assert.equal(record.error?.message, message);
      assert.ok(record.completedAt instanceof Date);
      const result = await q.result(id);
      assert.equal(result?.state, "failed");
      assert.equal(result.error?.name, "CustomError");
      assert.equal(result.error?.message, message);
      assert.equal(result.value, undefined);
      await assert.rejects(q.wait(id), TaskFailedError);
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "retrying",
        "started",
        "retrying",
        "started",
        "failed",
      ]);
      const failed = events.at(-1)!;
      assert.equal(failed.attempt, 3);
      assert.equal((failed.data?.error as { message: string }).message, message);
    },
  },
  {
    name: "a fixed backoff waits the same delay before each retry",
    async fn({ open, key }) {
      await using q = await open();
      const delay = 100;
      const id = await q.enqueue(flaky, [key, 2, "done"], {
        retries: 2,
        backoff: { type: "fixed", delay },
      });
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), "done");
      const events = await eventsOf(q, id);
      const gaps = events.flatMap((e, i) => {
        if (e.type !== "retrying") return [];
        const retryAt = e.data?.retryAt as number;
        const next = events.slice(i + 1).find((n) => n.type === "started")!;
        return [{ planned: retryAt - e.at.getTime(), startedAt: next.at.getTime(), retryAt }];
      });
      assert.equal(gaps.length, 2);
      for (const gap of gaps) {
        // ±20 % jitter, less the moment between planning the retry and storing the event.
        assert.ok(gap.planned <= delay * 1.2 + 1, `retry planned ${gap.planned}ms ahead`);
        assert.ok(gap.planned >= delay * 0.8 - 30, `retry planned ${gap.planned}ms ahead`);
        assert.ok(gap.startedAt >= gap.retryAt, "a retry does not start before it is due");
      }
    },
  },
  {
    name: "retries: 0 allows exactly one attempt",
    async fn({ open, key }) {
      await using q = await open();
      const message = `once ${key}`;
      const id = await q.enqueue(fail, [message], { retries: 0 });
      assert.equal((await q.get(id))?.maxAttempts, 1);
      await q.run({ until: "idle" });
      assert.equal(probe(message).calls, 1);
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 1);
      assert.deepEqual(await typesOf(q, id), ["enqueued", "started", "failed"]);
    },
  },
  {
    name: "an unknown task name fails at once without retries, and the worker carries on",
    async fn({ open, key }) {
      await using q = await open();
      const name = `conformance.unregistered-${key}`;
      const unknown = await q.enqueue(name, [1], { retries: 3 });
      const next = await q.enqueue(echo, ["next"]);
      await q.run({ until: "idle", concurrency: 1 });
      const record = await q.get(unknown);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 1);
      const result = await q.result(unknown);
      assert.equal(result?.state, "failed");
      assert.equal(result.error?.name, "UnknownTaskError");
      assert.ok(result.error?.message.includes(name), "the message names the task");
      const events = await eventsOf(q, unknown);
      assert.deepEqual(events.map((e) => e.type), ["enqueued", "started", "failed"]);
      assert.equal((events[2].data?.error as { name: string }).name, "UnknownTaskError");
      await assert.rejects(
        q.wait(unknown),
        (e: unknown) => e instanceof TaskFailedError && e.remote.name === "UnknownTaskError",
      );
      assert.equal(await q.wait(next), "next");
    },
  },
  {
    name: "a result the codec cannot carry fails the task without retries",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(returnsFunction, [], { retries: 3 });
      await q.run({ until: "idle" });
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 1);
      const result = await q.result(id);
      assert.equal(result?.state, "failed");
      assert.equal(result.error?.name, "SerializationError");
      assert.deepEqual(await typesOf(q, id), ["enqueued", "started", "failed"]);
    },
  },
  {
    name: "a timeout aborts the handler's signal and fails the attempt with TimeoutError",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(sleep, [1_000, key], {
        timeout: "50ms",
        retries: 1,
        backoff: { type: "fixed", delay: 10 },
      });
      const start = Date.now();
      await q.run({ until: "idle" });
      assert.ok(Date.now() - start < 900, "the handlers did not run their full second");
      const p = probe(key);
      assert.deepEqual(p.attempts, [1, 2], "retried per the policy");
      assert.equal(p.finished, 0);
      assert.equal(p.aborts.length, 2, "each attempt's signal aborted");
      for (const reason of p.aborts) assert.equal((reason as Error).name, "TimeoutError");
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 2);
      const result = await q.result(id);
      assert.equal(result?.error?.name, "TimeoutError");
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "retrying",
        "started",
        "failed",
      ]);
      assert.equal((events[2].data?.error as { name: string }).name, "TimeoutError");
    },
  },
  {
    name: "a handler that ignores its signal still fails at its timeout",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(gated, [key], { timeout: "50ms", retries: 0 });
      const start = Date.now();
      await q.run({ until: "idle" });
      assert.ok(Date.now() - start < 3_000, "the worker did not wait for the handler");
      assert.equal((await q.get(id))?.state, "failed");
      assert.equal((await q.result(id))?.error?.name, "TimeoutError");
      assert.equal((probe(key).aborts[0] as Error).name, "TimeoutError");
      openGate(key);
      await until("the handler to return", () => probe(key).finished === 1);
      assert.equal((await q.result(id))?.state, "failed", "its late value is discarded");
    },
  },
];
