// Enqueueing and reading back: records, results, wait, batches, caller ids, dedupe keys.

import assert from "node:assert/strict";
import {
  DuplicateTaskError,
  SerializationError,
  TaskFailedError,
  TaskNotFoundError,
  TimeoutError,
} from "../../mod.ts";
import { type Case, totalTasks } from "./harness.ts";
import { add, echo, fail } from "./tasks.ts";

export const enqueueCases: Case[] = [
  {
    name: "enqueue stores a queued record with its fields and arguments",
    async fn({ open }) {
      await using q = await open();
      const value = {
        when: new Date(0),
        map: new Map<string, bigint>([["a", 1n]]),
        big: 2n ** 70n,
        set: new Set(["x"]),
        nested: [1, "two", null, { three: 3 }],
      };
      const before = Date.now();
      const id = await q.enqueue(echo, [value], { retries: 2, priority: 3 });
      const after = Date.now();
      assert.equal(typeof id, "string");
      const record = await q.get(id);
      assert.ok(record, "the record exists");
      assert.equal(record.id, id);
      assert.equal(record.task, echo.name);
      assert.equal(record.queue, "default");
      assert.equal(record.priority, 3);
      assert.equal(record.state, "queued");
      assert.equal(record.attempts, 0);
      assert.equal(record.maxAttempts, 3, "maxAttempts is retries + 1");
      assert.ok(record.createdAt instanceof Date);
      assert.ok(record.createdAt.getTime() >= before && record.createdAt.getTime() <= after);
      assert.deepEqual(record.args, [value]);
      assert.deepEqual(record.dependsOn, []);
      assert.equal(record.completedAt, undefined);
      assert.equal(await q.result(id), undefined, "no result before the task ends");
      const defaults = await q.get(await q.enqueue(echo, [1]));
      assert.equal(defaults?.priority, 0, "priority defaults to 0");
      assert.equal(defaults?.maxAttempts, 4, "retries default to 3");
    },
  },
  {
    name: "a completed task has a result record and wait returns its value",
    async fn({ open }) {
      await using q = await open();
      const value = { at: new Date(1_000), big: -(2n ** 65n), bytes: new Uint8Array([1, 2]) };
      const id = await q.enqueue(echo, [value]);
      const sumId = await q.enqueue(add, [2, 3]);
      await q.run({ until: "idle" });
      const record = await q.get(id);
      assert.equal(record?.state, "completed");
      assert.equal(record.attempts, 1);
      assert.ok(record.startedAt instanceof Date && record.completedAt instanceof Date);
      assert.ok(record.startedAt.getTime() >= record.createdAt.getTime());
      assert.ok(record.completedAt.getTime() >= record.startedAt.getTime());
      const result = await q.result(id);
      assert.ok(result);
      assert.equal(result.taskId, id);
      assert.equal(result.state, "completed");
      assert.deepEqual(result.value, value);
      assert.equal(result.error, undefined);
      assert.ok(result.completedAt instanceof Date);
      assert.deepEqual(await q.wait(id), value);
      // `wait` is typed by the task's result: this line compiles only if it is a number.
      const sum: number = await q.wait(sumId);
      assert.equal(sum, 5);
    },
  },
  {
    name: "wait on a failed task throws TaskFailedError carrying the remote error",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(fail, [`boom ${key}`], { retries: 0 });
      await q.run({ until: "idle" });
      const error = await q.wait(id).then(() => undefined, (e) => e);
      assert.ok(error instanceof TaskFailedError, `got ${error}`);
      assert.equal(error.taskId, id);
      assert.equal(error.remote.name, "CustomError");
      assert.equal(error.remote.message, `boom ${key}`);
      assert.match(error.message, /CustomError/);
    },
  },
  {
    name: "wait gives up with TimeoutError and the task stays as it was",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { queue: "nobody-serves-this" });
      const start = Date.now();
      await assert.rejects(q.wait(id, { timeout: "60ms" }), TimeoutError);
      assert.ok(Date.now() - start >= 55, "wait waited for its timeout");
      assert.equal((await q.get(id))?.state, "queued");
    },
  },
  {
    name: "wait on an unknown id throws TaskNotFoundError",
    async fn({ open }) {
      await using q = await open();
      await assert.rejects(q.wait("no-such-task", { timeout: "1s" }), TaskNotFoundError);
      assert.equal(await q.get("no-such-task"), undefined);
      assert.equal(await q.result("no-such-task"), undefined);
    },
  },
  {
    name: "a task can be enqueued by its name",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(add.name, [20, 22]);
      assert.equal((await q.get(id))?.task, add.name);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), 42);
    },
  },
  {
    name: "enqueueMany returns the ids in item order",
    async fn({ open }) {
      await using q = await open();
      const items = [
        { task: add, args: [1, 1] },
        { task: echo, args: ["two"], priority: 9 },
        { task: add.name, args: [3, 3], queue: "default" },
      ];
      const ids = await q.enqueueMany(items);
      assert.equal(ids.length, 3);
      assert.equal(new Set(ids).size, 3, "the ids are distinct");
      for (const [i, id] of ids.entries()) {
        assert.deepEqual((await q.get(id))?.args, items[i].args);
      }
      assert.equal((await q.get(ids[1]))?.priority, 9);
      assert.deepEqual(await q.enqueueMany([]), [], "an empty batch is fine");
      await q.run({ until: "idle" });
      assert.deepEqual(await Promise.all(ids.map((id) => q.wait(id))), [2, "two", 6]);
    },
  },
  {
    name: "enqueueMany stores all items or none",
    async fn({ open, key }) {
      await using q = await open();
      await assert.rejects(
        q.enqueueMany([
          { task: echo, args: [1] },
          { task: echo, args: [() => 1] },
        ]),
        (e: Error) => e instanceof SerializationError && /items\[1\]/.test(e.message),
      );
      assert.equal(await totalTasks(q), 0, "an invalid item stores nothing");
      const existing = await q.enqueue(echo, ["kept"], { id: `dup-${key}` });
      await assert.rejects(
        q.enqueueMany([
          { task: echo, args: ["new"], id: `new-${key}` },
          { task: echo, args: ["clash"], id: existing },
        ]),
        DuplicateTaskError,
      );
      assert.equal(await totalTasks(q), 1, "a clash in the store stores nothing");
      assert.equal(await q.get(`new-${key}`), undefined);
      assert.deepEqual((await q.get(existing))?.args, ["kept"]);
    },
  },
  {
    name: "a caller-chosen id is the task's id",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(add, [1, 2], { id: `job-${key}` });
      assert.equal(id, `job-${key}`);
      assert.equal((await q.get(id))?.id, id);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(`job-${key}`), 3);
    },
  },
  {
    name: "an id that exists throws DuplicateTaskError and stores nothing",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(echo, ["first"], { id: `dup-${key}` });
      await assert.rejects(q.enqueue(echo, ["second"], { id }), DuplicateTaskError);
      assert.equal(await totalTasks(q), 1);
      assert.deepEqual((await q.get(id))?.args, ["first"]);
      await q.run({ until: "idle" });
      // A final task's id is still taken.
      await assert.rejects(q.enqueue(echo, ["third"], { id }), DuplicateTaskError);
      assert.equal(await q.wait(id), "first");
    },
  },
  {
    name: "a key returns the live task's id, and a new task once that one is final",
    async fn({ open, key }) {
      await using q = await open();
      const first = await q.enqueue(echo, ["a"], { key });
      const again = await q.enqueue(echo, ["b"], { key });
      assert.equal(again, first, "a live task with the key is returned");
      assert.equal(await totalTasks(q), 1, "nothing more is stored");
      assert.deepEqual((await q.get(first))?.args, ["a"]);
      assert.equal((await q.get(first))?.key, key);
      const batch = await q.enqueueMany([
        { task: echo, args: ["c"], key: `${key}-batch` },
        { task: echo, args: ["d"], key: `${key}-batch` },
      ]);
      assert.equal(batch[0], batch[1], "a key repeated within a batch is one task");
      assert.equal(await totalTasks(q), 2);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(first), "a");
      const later = await q.enqueue(echo, ["e"], { key });
      assert.notEqual(later, first, "a final task no longer holds its key");
      assert.equal((await q.get(later))?.state, "queued");
    },
  },
];
