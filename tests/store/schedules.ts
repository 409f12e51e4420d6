// Store-level cases of the schedule store: round trips, the tick compare-and-set (alone,
// detached, and raced by two handles), pause and resume, due schedules, and a reopened
// store that keeps them.

import assert from "node:assert/strict";
import type { StoredEvent } from "../../src/backend.ts";
import { newSchedule, type StoreCase, tickTask } from "./harness.ts";

/** The schedule-store cases. */
export const scheduleCases: StoreCase[] = [
  {
    name: "schedules round-trip, optional fields absent or present",
    async fn({ backend: b }) {
      const bare = newSchedule("bare");
      delete bare.nextRunAt;
      const full = newSchedule("full", {
        cron: "*/5 * * * *",
        tz: "Europe/Paris",
        startAt: 1,
        endAt: 9_000_000,
        misfire: "once",
        paused: true,
        lastRunAt: 900_000,
        timeout: 5000,
        ttl: 60_000,
        resultTtl: 3600_000,
        priority: 7,
        maxAttempts: 4,
        backoff: { type: "exponential", delay: 10, max: 100, jitter: 0.5 },
      });
      delete full.every;
      await b.queue.putSchedule(full);
      await b.queue.putSchedule(bare);
      assert.deepEqual(await b.queue.getSchedule("bare"), bare);
      assert.deepEqual(await b.queue.getSchedule("full"), full);
      assert.equal(await b.queue.getSchedule("none"), undefined);
      const got = (await b.queue.getSchedule("bare"))!;
      for (const field of ["cron", "tz", "startAt", "endAt", "nextRunAt", "lastRunAt", "ttl"]) {
        assert.equal(field in got, false, field);
      }
      // Replacing keeps one schedule, every field as given.
      const replaced = newSchedule("full", { every: 1000, nextRunAt: 42 });
      await b.queue.putSchedule(replaced);
      assert.deepEqual(await b.queue.getSchedule("full"), replaced);
      assert.equal(await b.queue.deleteSchedule("full"), true);
      assert.equal(await b.queue.deleteSchedule("full"), false);
      assert.deepEqual(await b.queue.listSchedules(), [bare]);
    },
  },
  {
    name: "listSchedules lists by id, and writes after it are stored",
    async fn({ backend: b }) {
      await b.queue.putSchedule(newSchedule("b"));
      await b.queue.putSchedule(newSchedule("a"));
      assert.deepEqual(await b.queue.listSchedules(), [newSchedule("a"), newSchedule("b")]);
      const replaced = newSchedule("b", { every: 1000, nextRunAt: 42 });
      await b.queue.putSchedule(replaced);
      assert.deepEqual(await b.queue.listSchedules(), [newSchedule("a"), replaced]);
      assert.equal(await b.queue.deleteSchedule("a"), true);
      assert.deepEqual(await b.queue.listSchedules(), [replaced]);
    },
  },
  {
    name: "fireTick is a compare-and-set of the schedule's next tick",
    async fn({ backend: b }) {
      await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
      const task = tickTask("s", 1000);
      const effects = await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task });
      assert.ok(effects);
      assert.deepEqual(effects.events.map((e) => e.type), ["enqueued", "schedule_fired"]);
      const fired = effects.events[1] as StoredEvent;
      assert.equal(typeof fired.id, "string");
      assert.equal(fired.taskId, "s:1000");
      assert.equal(fired.queue, "default");
      assert.deepEqual(fired.data, { scheduleId: "s", tick: 1000 });
      assert.deepEqual(await b.events.query({ type: "schedule_fired" }), [fired]);
      const stored = await b.queue.get("s:1000");
      assert.deepEqual(stored, { ...task, state: "queued", attempts: 0 });
      const schedule = await b.queue.getSchedule("s");
      assert.equal(schedule?.nextRunAt, 2000);
      assert.equal(schedule?.lastRunAt, 1000);

      // The same tick again: the compare-and-set fails, nothing changes.
      assert.equal(
        await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task }),
        undefined,
      );
      assert.equal(await b.queue.fireTick({ scheduleId: "nope", tick: 1000 }), undefined);
      assert.equal((await b.queue.list({})).length, 1);

      // A skipped (missed) tick advances the schedule only.
      const skipped = await b.queue.fireTick({ scheduleId: "s", tick: 2000, next: 3000 });
      assert.deepEqual(skipped, { events: [], results: [] });
      assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 3000);

      // A tick whose task exists advances the schedule without a second task or event.
      await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
      const again = await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task });
      assert.deepEqual(again, { events: [], results: [] });
      assert.equal((await b.events.query({ type: "schedule_fired" })).length, 1);

      // A future tick's task is scheduled; the last tick clears nextRunAt.
      const late = tickTask("s", 2000, { runAt: Date.now() + 60_000 });
      const last = await b.queue.fireTick({ scheduleId: "s", tick: 2000, task: late });
      assert.deepEqual(last?.events.map((e) => e.type), ["scheduled", "schedule_fired"]);
      assert.equal((await b.queue.get("s:2000"))?.state, "scheduled");
      assert.equal("nextRunAt" in (await b.queue.getSchedule("s"))!, false);
      assert.equal(await b.queue.fireTick({ scheduleId: "s", tick: 2000 }), undefined);

      // A paused schedule does not fire.
      await b.queue.putSchedule(newSchedule("p", { nextRunAt: 1000, paused: true }));
      const paused = await b.queue.fireTick({
        scheduleId: "p",
        tick: 1000,
        next: 2000,
        task: tickTask("p", 1000),
      });
      assert.equal(paused, undefined);
      assert.equal(await b.queue.get("p:1000"), undefined);
      assert.equal((await b.queue.getSchedule("p"))?.nextRunAt, 1000);
    },
  },
  {
    name: "fireTick of a detached queue returns its events",
    attach: { results: false, events: false },
    async fn({ backend: b }) {
      await b.queue.putSchedule(newSchedule("d", { nextRunAt: 5 }));
      const effects = await b.queue.fireTick({ scheduleId: "d", tick: 5, task: tickTask("d", 5) });
      assert.deepEqual(effects?.events.map((e) => e.type), ["enqueued", "schedule_fired"]);
      assert.ok(effects?.events.every((e) => !("id" in e)));
      const paused = await b.queue.setSchedulePaused("d", true);
      assert.equal(paused?.events.length, 1);
      assert.equal("id" in paused!.events[0], false);
      assert.deepEqual(await b.events.query({}), []);
    },
  },
  {
    name: "one tick fired at once by two handles fires exactly once",
    async fn({ backend: one, connect }) {
      const two = await connect();
      await one.queue.putSchedule(newSchedule("race", { nextRunAt: 1000 }));
      const attempts = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 ? two : one).queue.fireTick({
            scheduleId: "race",
            tick: 1000,
            next: 2000,
            task: tickTask("race", 1000),
          })),
      );
      assert.equal(attempts.filter((e) => e !== undefined).length, 1);
      assert.deepEqual((await two.queue.list({})).map((t) => t.id), ["race:1000"]);
      assert.equal((await one.events.query({ type: "schedule_fired" })).length, 1);
      assert.equal((await two.queue.getSchedule("race"))?.nextRunAt, 2000);
    },
  },
  {
    name: "pausing and resuming a schedule",
    async fn({ backend: b }) {
      await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
      assert.equal(await b.queue.setSchedulePaused("nope", true), undefined);
      assert.equal(await b.queue.setSchedulePaused("s", false, 5), undefined);
      assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 1000);

      const before = Date.now();
      const paused = await b.queue.setSchedulePaused("s", true);
      assert.equal(paused?.events.length, 1);
      const event = paused!.events[0] as StoredEvent;
      assert.equal(event.type, "schedule_paused");
      assert.equal("taskId" in event, false);
      assert.deepEqual(event.data, { scheduleId: "s" });
      assert.ok(event.at >= before);
      assert.deepEqual(await b.events.query({}), [event]);
      const stored = await b.queue.getSchedule("s");
      assert.equal(stored?.paused, true);
      assert.equal(stored?.nextRunAt, 1000, "pausing keeps the next tick");
      assert.equal(await b.queue.setSchedulePaused("s", true), undefined);

      const resumed = await b.queue.setSchedulePaused("s", false, 7000);
      assert.deepEqual(resumed?.events.map((e) => [e.type, e.data]), [
        ["schedule_resumed", { scheduleId: "s" }],
      ]);
      assert.equal((await b.queue.getSchedule("s"))?.paused, false);
      assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 7000);

      // Resuming without a next tick leaves none.
      await b.queue.setSchedulePaused("s", true);
      await b.queue.setSchedulePaused("s", false);
      assert.equal("nextRunAt" in (await b.queue.getSchedule("s"))!, false);
      assert.equal((await b.events.query({})).length, 4);
    },
  },
  {
    name: "dueSchedules and nextScheduleAt skip paused and finished schedules",
    async fn({ backend: b }) {
      assert.equal(await b.queue.nextScheduleAt(), undefined);
      assert.deepEqual(await b.queue.dueSchedules(10_000, 10), []);
      const done = newSchedule("done");
      delete done.nextRunAt;
      await b.queue.putSchedule(done);
      assert.equal(await b.queue.nextScheduleAt(), undefined);
      await b.queue.putSchedule(newSchedule("c", { nextRunAt: 300 }));
      await b.queue.putSchedule(newSchedule("a", { nextRunAt: 100 }));
      await b.queue.putSchedule(newSchedule("b", { nextRunAt: 200 }));
      await b.queue.putSchedule(newSchedule("p", { nextRunAt: 50, paused: true }));
      await b.queue.putSchedule(newSchedule("later", { nextRunAt: 9000 }));
      assert.equal(await b.queue.nextScheduleAt(), 100);
      const ids = async (now: number, limit: number) =>
        (await b.queue.dueSchedules(now, limit)).map((s) => s.id);
      assert.deepEqual(await ids(300, 10), ["a", "b", "c"]);
      assert.deepEqual(await ids(200, 10), ["a", "b"]);
      assert.deepEqual(await ids(1000, 2), ["a", "b"]);
      assert.deepEqual(await ids(99, 10), []);
      assert.deepEqual(
        (await b.queue.dueSchedules(100, 1))[0],
        newSchedule("a", { nextRunAt: 100 }),
      );
      await b.queue.setSchedulePaused("a", true);
      assert.equal(await b.queue.nextScheduleAt(), 200);
      await b.queue.deleteSchedule("b");
      assert.deepEqual(await ids(10_000, 10), ["c", "later"]);
    },
  },
  {
    name: "a reopened store keeps schedules, paused ones paused",
    async fn({ backend: first, connect }) {
      await first.queue.putSchedule(newSchedule("kept", { nextRunAt: 100 }));
      await first.queue.putSchedule(newSchedule("held", { nextRunAt: 100 }));
      await first.queue.setSchedulePaused("held", true);
      await first.close();
      const again = await connect();
      assert.equal((await again.queue.getSchedule("held"))?.paused, true);
      assert.equal((await again.queue.getSchedule("kept"))?.paused, false);
      assert.deepEqual((await again.queue.dueSchedules(1000, 10)).map((s) => s.id), ["kept"]);
      assert.equal(await again.queue.fireTick({ scheduleId: "held", tick: 100 }), undefined);
    },
  },
];
