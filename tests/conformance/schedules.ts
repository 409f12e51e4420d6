// Schedules: stored in the backend, fired tick by tick as tasks with the id
// `<schedule>:<tick>`, each tick exactly once across any number of schedulers; pause and
// resume persist and never fire what was missed while paused; after downtime a schedule
// skips, or fires once to catch up; workers fire ticks unless `scheduler: false`, and
// `run({ until: "idle" })` never waits for one. Time passes for real here, so the cases
// that need a tick to come round use `every: "1s"` or a seconds field, and others use
// schedules whose next tick is far away (or is moved into the past through the store).

import assert from "node:assert/strict";
import {
  ConfigError,
  type EventRecord,
  type OmniQ,
  type ScheduleOptions,
  type TaskRecord,
} from "../../mod.ts";
import { type Case, collect, sleep as pause, typesOf, until } from "./harness.ts";
import { echo } from "./tasks.ts";

/** Once a year, so its next tick is never due during a case. */
const YEARLY = "0 0 1 1 *";

/** The tasks a schedule enqueued, in tick order. */
async function tickTasks(q: OmniQ, scheduleId: string): Promise<TaskRecord[]> {
  return (await q.list({ limit: 1_000 }))
    .filter((t) => t.scheduleId === scheduleId)
    .sort((a, b) => tickOf(a.id) - tickOf(b.id));
}

/** The tick time in a tick task's id. */
function tickOf(taskId: string): number {
  return Number(taskId.slice(taskId.lastIndexOf(":") + 1));
}

/** Expect tick task ids `<id>:<t>`, `<id>:<t + every>` …: none missing, none twice. */
function assertConsecutive(tasks: TaskRecord[], scheduleId: string, every: number): number[] {
  const ticks = tasks.map((t) => tickOf(t.id));
  for (const [i, t] of tasks.entries()) {
    assert.equal(t.id, `${scheduleId}:${ticks[i]}`);
    assert.ok(Number.isInteger(ticks[i]), `a tick time in ${t.id}`);
    if (i > 0) assert.equal(ticks[i] - ticks[i - 1], every, `ticks ${ticks.join(", ")}`);
  }
  return ticks;
}

/** The `schedule_fired` events of a schedule. */
async function firedEvents(q: OmniQ, scheduleId: string): Promise<EventRecord[]> {
  return (await collect(q.events({ type: "schedule_fired" })))
    .filter((e) => e.data?.scheduleId === scheduleId);
}

/** The only schedule of the store. */
async function onlySchedule(q: OmniQ) {
  const all = await q.schedules();
  assert.equal(all.length, 1, "one schedule is stored");
  return all[0];
}

/** Sleep until a time (epoch ms) has passed. */
async function sleepUntil(time: number): Promise<void> {
  const left = time - Date.now();
  if (left >= 0) await pause(left + 5);
}

export const scheduleCases: Case[] = [
  {
    name: "an every schedule fires each tick once, as a task with id <schedule>:<tick>",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["tick"], {
        every: "1s",
        id: `every-${key}`,
        queue: "ticks",
        priority: 7,
        retries: 0,
      });
      assert.equal(id, `every-${key}`);
      const s = await onlySchedule(q);
      assert.equal(s.id, id);
      assert.equal(s.task, echo.name);
      assert.deepEqual(s.args, ["tick"]);
      assert.equal(s.every, 1_000);
      assert.equal(s.cron, undefined);
      assert.equal(s.paused, false);
      assert.equal(s.misfire, "skip");
      assert.equal(s.misfireGrace, 60_000, "misfireGrace defaults to 60 s");
      assert.equal(s.queue, "ticks");
      assert.equal(s.priority, 7);
      assert.ok(s.nextRunAt instanceof Date);
      const first = s.nextRunAt.getTime();
      assert.ok(first <= Date.now(), "the first tick is due at once");

      const heard: EventRecord[] = [];
      const off = q.on("schedule_fired", (e) => heard.push(e));
      assert.equal(await q.tick(), 1);
      assert.equal(await q.tick(), 0, "a tick fires once");
      off();
      assert.equal(heard.length, 1, "listeners hear schedule_fired");
      const fired = await onlySchedule(q);
      assert.equal(fired.lastRunAt?.getTime(), first);
      assert.equal(fired.nextRunAt?.getTime(), first + 1_000);

      await sleepUntil(first + 1_000);
      assert.equal(await q.tick(), 1);
      const tasks = await tickTasks(q, id);
      assert.deepEqual(assertConsecutive(tasks, id, 1_000), [first, first + 1_000]);
      for (const t of tasks) {
        assert.equal(t.scheduleId, id);
        assert.equal(t.task, echo.name);
        assert.deepEqual(t.args, ["tick"]);
        assert.equal(t.queue, "ticks");
        assert.equal(t.priority, 7);
        assert.equal(t.maxAttempts, 1, "the schedule's task options apply");
      }
      const events = await firedEvents(q, id);
      assert.deepEqual(events.map((e) => e.taskId), tasks.map((t) => t.id));
      assert.deepEqual(events.map((e) => e.data?.tick), [first, first + 1_000]);
      assert.ok(events.every((e) => e.queue === "ticks"));
      assert.equal(heard[0].taskId, tasks[0].id);

      await q.run({ until: "idle", queues: ["ticks"], scheduler: false });
      for (const t of tasks) assert.equal(await q.wait(t.id), "tick");
      assert.deepEqual(await typesOf(q, tasks[0].id), [
        "enqueued",
        "schedule_fired",
        "started",
        "completed",
      ]);
    },
  },
  {
    name: "a paused schedule fires nothing; resumed, it fires its next tick only",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["p"], { every: "1s", id: `pause-${key}` });
      const first = (await onlySchedule(q)).nextRunAt!.getTime();
      assert.equal(await q.tick(), 1);
      assert.equal(await q.pauseSchedule(id), true);
      assert.equal(await q.pauseSchedule(id), false, "already paused");
      assert.equal((await onlySchedule(q)).paused, true);
      // Time passes over at least one tick; none fires.
      const pausedUntil = Date.now() + 1_600;
      while (Date.now() < pausedUntil) {
        assert.equal(await q.tick(), 0, "no tick fires while paused");
        await pause(40);
      }
      assert.equal((await tickTasks(q, id)).length, 1);
      const resumedAt = Date.now();
      assert.equal(await q.resumeSchedule(id), true);
      const afterResume = Date.now();
      assert.equal(await q.resumeSchedule(id), false, "not paused");
      const s = await onlySchedule(q);
      assert.equal(s.paused, false);
      const next = s.nextRunAt!.getTime();
      assert.ok(next > resumedAt, "the next tick is after the resume");
      assert.ok(next <= afterResume + 1_000, "the first tick after the resume");
      assert.equal((next - first) % 1_000, 0, "on the schedule's own grid");
      await sleepUntil(next);
      assert.equal(await q.tick(), 1, "the next tick fires, and only it");
      const ticks = (await tickTasks(q, id)).map((t) => tickOf(t.id));
      assert.deepEqual(ticks, [first, next], "ticks missed while paused never fire");
      for (const type of ["schedule_paused", "schedule_resumed"] as const) {
        const events = await collect(q.events({ type }));
        assert.equal(events.length, 1, `one ${type} event`);
        assert.equal(events[0].data?.scheduleId, id);
        assert.equal(events[0].taskId, undefined);
      }
      assert.equal(await q.pauseSchedule(`nope-${key}`), false, "unknown id");
      assert.equal(await q.resumeSchedule(`nope-${key}`), false, "unknown id");
    },
  },
  {
    name: "a paused schedule stays paused when the store is opened again",
    async fn({ open, key }) {
      // A `memory:` store lives while one of its handles is open; this one keeps it.
      await using keeper = await open();
      const id = `persist-${key}`;
      {
        await using first = await open();
        await first.schedule(echo, ["kept"], { every: "1s", id });
        assert.equal(await first.pauseSchedule(id), true);
      }
      await using second = await open();
      const s = await onlySchedule(second);
      assert.equal(s.id, id);
      assert.equal(s.paused, true);
      assert.equal(s.every, 1_000);
      assert.deepEqual(s.args, ["kept"]);
      assert.equal(await second.tick(), 0, "still paused");
      await second.run({ until: "idle" });
      assert.equal((await tickTasks(second, id)).length, 0);
      assert.equal(await second.resumeSchedule(id), true);
      assert.equal((await keeper.schedules())[0].paused, false);
    },
  },
  {
    name: "unschedule deletes the schedule and keeps the tasks it enqueued",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["u"], { every: "1s", id: `gone-${key}` });
      const other = await q.schedule(echo, ["o"], { cron: YEARLY, id: `stays-${key}` });
      assert.equal(await q.tick(), 1);
      const [task] = await tickTasks(q, id);
      assert.equal(await q.unschedule(id), true);
      assert.equal(await q.unschedule(id), false, "already gone");
      assert.deepEqual((await q.schedules()).map((s) => s.id), [other]);
      await pause(1_050);
      assert.equal(await q.tick(), 0);
      assert.equal(await q.pauseSchedule(id), false);
      assert.equal(await q.resumeSchedule(id), false);
      assert.equal((await q.get(task.id))?.state, "queued", "its task stays");
      assert.deepEqual((await tickTasks(q, id)).map((t) => t.id), [task.id]);
    },
  },
  {
    name: "three handles ticking one store at once fire each tick exactly once",
    async fn({ open, key }) {
      const handles = [await open(), await open(), await open()];
      const id = await handles[0].schedule(echo, ["x"], { every: "1s", id: `race-${key}` });
      const createdAt = (await onlySchedule(handles[0])).createdAt.getTime();
      const end = Date.now() + 3_200;
      const counts = await Promise.all(handles.map(async (q) => {
        let fired = 0;
        while (Date.now() < end) {
          fired += await q.tick();
          await pause(3);
        }
        return fired;
      }));
      const tasks = await tickTasks(handles[1], id);
      const ticks = assertConsecutive(tasks, id, 1_000);
      assert.equal(ticks[0], createdAt, "the first tick is the schedule's creation");
      assert.ok(ticks.length >= 3 && ticks.length <= 5, `about 4 ticks in 3.2 s: ${ticks}`);
      assert.equal(new Set(tasks.map((t) => t.id)).size, tasks.length);
      assert.equal(counts.reduce((a, b) => a + b, 0), tasks.length, `fired ${counts}`);
      const events = await firedEvents(handles[2], id);
      assert.deepEqual(events.map((e) => e.taskId).sort(), tasks.map((t) => t.id).sort());
      const s = await onlySchedule(handles[0]);
      assert.equal(s.lastRunAt?.getTime(), ticks.at(-1));
      assert.equal(s.nextRunAt?.getTime(), ticks.at(-1)! + 1_000);
    },
  },
  {
    name: 'after downtime, misfire "skip" fires nothing and resumes at the next tick',
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["skip"], { cron: YEARLY, id: `skip-${key}` });
      const stored = (await q.stores.queue.getSchedule(id))!;
      assert.equal(stored.misfire, "skip");
      const stale = Date.now() - 10 * 60_000;
      await q.stores.queue.putSchedule({ ...stored, nextRunAt: stale });
      const before = Date.now();
      assert.equal(await q.tick(), 0, "the missed tick is skipped");
      const s = await onlySchedule(q);
      assert.ok(s.nextRunAt!.getTime() > before, "the next tick is after now");
      assert.equal(s.nextRunAt!.getTime(), stored.nextRunAt, "the schedule's own next tick");
      assert.equal(await q.tick(), 0);
      assert.equal((await tickTasks(q, id)).length, 0);
      assert.equal((await firedEvents(q, id)).length, 0);
    },
  },
  {
    name: 'after downtime, misfire "once" fires one catch-up run',
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["once"], {
        cron: YEARLY,
        id: `once-${key}`,
        misfire: "once",
      });
      const stored = (await q.stores.queue.getSchedule(id))!;
      const stale = Date.now() - 10 * 60_000;
      await q.stores.queue.putSchedule({ ...stored, nextRunAt: stale });
      assert.equal(await q.tick(), 1);
      assert.equal(await q.tick(), 0);
      const tasks = await tickTasks(q, id);
      assert.deepEqual(tasks.map((t) => t.id), [`${id}:${stale}`]);
      assert.equal((await firedEvents(q, id)).length, 1);
      assert.equal((await onlySchedule(q)).nextRunAt?.getTime(), stored.nextRunAt);
      await q.run({ until: "idle", scheduler: false });
      assert.equal(await q.wait(tasks[0].id), "once");
    },
  },
  {
    name: "a tick late by less than misfireGrace still fires, and so do the ones after it",
    async fn({ open, key }) {
      await using q = await open();
      // Within the grace, "skip" does not apply: the late tick fires as usual.
      const yearly = await q.schedule(echo, ["late"], {
        cron: YEARLY,
        id: `late-${key}`,
        misfireGrace: "5m",
      });
      const stored = (await q.stores.queue.getSchedule(yearly))!;
      const late = Date.now() - 2 * 60_000;
      await q.stores.queue.putSchedule({ ...stored, nextRunAt: late });
      assert.equal(await q.tick(), 1);
      assert.deepEqual((await tickTasks(q, yearly)).map((t) => t.id), [`${yearly}:${late}`]);
      // Several ticks behind, all within the default grace: each fires, in order.
      const startAt = Date.now() - 3_500;
      const every = await q.schedule(echo, ["behind"], {
        every: "1s",
        startAt,
        id: `behind-${key}`,
      });
      const behind = (await q.stores.queue.getSchedule(every))!;
      await q.stores.queue.putSchedule({ ...behind, nextRunAt: startAt });
      const before = Date.now();
      const fired = await q.tick();
      const ticks = assertConsecutive(await tickTasks(q, every), every, 1_000);
      assert.equal(fired, ticks.length);
      assert.equal(ticks[0], startAt);
      assert.ok(ticks.length >= 4, `every tick up to now fired: ${ticks}`);
      assert.ok(ticks.at(-1)! + 1_000 > before, "up to now");
    },
  },
  {
    name: "after downtime, only ticks more than misfireGrace late are missed; later ones fire",
    async fn({ open, key }) {
      await using q = await open();
      // Ticks every second from `startAt`, the schedule behind since then, a 2 s grace: of
      // the ticks up to now, those 0.1 s and 1.1 s late fire (on their own, not as a
      // catch-up), the older ones are missed. This is a per-minute driver on Deno Deploy
      // that skipped a run: the tick of the minute it runs in must still fire. `startAt` is
      // set just before the tick, so the case holds while the store takes < 0.9 s for it.
      const made = [];
      for (const misfire of ["skip", "once"] as const) {
        const id = await q.schedule(echo, [misfire], {
          every: "1s",
          startAt: Date.now() - 60_000,
          misfire,
          misfireGrace: "2s",
          id: `${misfire}-grace-${key}`,
        });
        made.push((await q.stores.queue.getSchedule(id))!);
      }
      const startAt = Date.now() - 10_100;
      for (const stored of made) {
        await q.stores.queue.putSchedule({ ...stored, startAt, nextRunAt: startAt });
      }
      const fired = await q.tick();
      const skip = (await tickTasks(q, `skip-grace-${key}`)).map((t) => tickOf(t.id));
      assert.deepEqual(skip, [startAt + 9_000, startAt + 10_000]);
      const once = (await tickTasks(q, `once-grace-${key}`)).map((t) => tickOf(t.id));
      assert.deepEqual(once, [startAt, startAt + 9_000, startAt + 10_000], "one catch-up run");
      assert.equal(fired, 5);
      for (const s of await q.schedules()) {
        assert.equal(s.nextRunAt?.getTime(), startAt + 11_000);
      }
    },
  },
  {
    name: "a worker fires schedule ticks by itself, also for a schedule made elsewhere",
    async fn({ open, key }) {
      await using runner = await open();
      await using client = await open();
      const w = runner.worker();
      await w.start();
      const id = await client.schedule(echo, ["auto"], { every: "1s", id: `auto-${key}` });
      await until("two ticks to run", async () => {
        const done = (await tickTasks(client, id)).filter((t) => t.state === "completed");
        return done.length >= 2;
      }, 6_000);
      await w.stop();
      const tasks = await tickTasks(client, id);
      assertConsecutive(tasks, id, 1_000);
      assert.equal(tasks.length, (await firedEvents(client, id)).length);
      assert.ok(tasks.length <= 3);
    },
  },
  {
    name: "a worker with scheduler: false fires no tick",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["off"], { every: "1s", id: `off-${key}` });
      const due = (await onlySchedule(q)).nextRunAt!.getTime();
      const w = q.worker({ scheduler: false });
      await w.start();
      const plain = await q.enqueue(echo, ["plain"]);
      assert.equal(await q.wait(plain, { timeout: "5s" }), "plain", "the worker works");
      await pause(300);
      await w.stop();
      await q.run({ until: "idle", scheduler: false });
      assert.equal((await tickTasks(q, id)).length, 0);
      const s = await onlySchedule(q);
      assert.equal(s.nextRunAt?.getTime(), due, "the due tick is still there");
      assert.equal(s.lastRunAt, undefined);
    },
  },
  {
    name: "run until idle fires due ticks once and does not wait for the next",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["now"], { every: "1s", id: `idle-${key}` });
      const yearly = await q.schedule(echo, ["later"], { cron: YEARLY, id: `far-${key}` });
      const first = (await q.stores.queue.getSchedule(id))!.nextRunAt!;
      await q.run({ until: "idle" });
      assert.ok(Date.now() < first + 1_000, "returned before the next tick was due");
      const tasks = await tickTasks(q, id);
      assert.deepEqual(tasks.map((t) => t.id), [`${id}:${first}`]);
      assert.equal(await q.wait(tasks[0].id), "now", "the tick it fired ran");
      assert.equal((await tickTasks(q, yearly)).length, 0);
    },
  },
  {
    name: "bad schedule input is refused, naming the field, and nothing is stored",
    async fn({ open }) {
      await using q = await open();
      const bad: [ScheduleOptions, RegExp][] = [
        [{ cron: "not a cron" }, /cron/],
        [{ cron: "61 * * * *" }, /cron/],
        [{ cron: "* * * *" }, /cron/],
        [{ cron: "* * * * *", tz: "Mars/Olympus_Mons" }, /tz/],
        [{ cron: "* * * * *", tz: "" }, /tz/],
        [{ every: "500ms" }, /every/],
        [{ every: 999 }, /every/],
        [{ every: "soon" }, /every/],
        [{ every: "1s", cron: "* * * * *" }, /cron.*every|every.*cron/],
        [{}, /cron.*every|every.*cron/],
        [{ every: "1s", tz: "UTC" }, /tz/],
        [{ every: "1s", misfire: "later" as "skip" }, /misfire/],
        [{ every: "1s", misfireGrace: "a while" }, /misfireGrace/],
        [{ every: "1s", id: "has:colon" }, /id/],
        [{ every: "1s", startAt: Date.now() + 10_000, endAt: Date.now() }, /endAt/],
        [{ every: "1s", priority: 10 }, /priority/],
        [{ every: "1s", evrey: "1s" } as ScheduleOptions, /evrey/],
      ];
      for (const [options, pattern] of bad) {
        await assert.rejects(
          q.schedule(echo, [1], options),
          (e: unknown) => {
            assert.ok(e instanceof ConfigError, `${JSON.stringify(options)}: got ${e}`);
            assert.match(e.message, pattern, JSON.stringify(options));
            return true;
          },
        );
        assert.deepEqual(await q.schedules(), [], `nothing stored for ${JSON.stringify(options)}`);
      }
      await assert.rejects(
        // @ts-expect-error: arguments that are not an array do not compile either
        q.schedule(echo, "x", { every: "1s" }),
        (e: unknown) => e instanceof ConfigError && /args/.test(e.message),
      );
      await assert.rejects(
        q.schedule(echo, [() => 1], { every: "1s" }),
        (e: unknown) => e instanceof Error && /function/.test(e.message),
      );
      assert.deepEqual(await q.schedules(), []);
    },
  },
  {
    name: "scheduling again with the same id updates the schedule and keeps it paused",
    async fn({ open, key }) {
      await using q = await open();
      const id = `again-${key}`;
      assert.equal(await q.schedule(echo, ["v1"], { every: "1s", id }), id);
      const created = (await onlySchedule(q)).createdAt.getTime();
      assert.equal(await q.pauseSchedule(id), true);
      assert.equal(await q.schedule(echo, ["v2"], { every: "2s", id, queue: "again" }), id);
      let s = await onlySchedule(q);
      assert.deepEqual(s.args, ["v2"]);
      assert.equal(s.every, 2_000);
      assert.equal(s.queue, "again");
      assert.equal(s.paused, true, "still paused");
      assert.equal(await q.tick(), 0);
      assert.equal(await q.resumeSchedule(id), true);
      s = await onlySchedule(q);
      const next = s.nextRunAt!.getTime();
      assert.equal((next - created) % 2_000, 0, "on the new interval, from the first anchor");
      // The same timing again keeps the next tick.
      await q.schedule(echo, ["v3"], { every: "2s", id, queue: "again" });
      s = await onlySchedule(q);
      assert.equal(s.nextRunAt?.getTime(), next);
      assert.deepEqual(s.args, ["v3"]);
      assert.equal(s.paused, false, "still running");
    },
  },
  {
    name: "a cron schedule with a seconds field fires every second",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.schedule(echo, ["sec"], { cron: "*/1 * * * * *", id: `sec-${key}` });
      const s = await onlySchedule(q);
      assert.equal(s.cron, "*/1 * * * * *");
      assert.equal(s.nextRunAt!.getTime() % 1_000, 0, "on a whole second");
      let fired = 0;
      await until("two ticks", async () => {
        fired += await q.tick();
        return fired >= 2;
      }, 5_000);
      const ticks = assertConsecutive(await tickTasks(q, id), id, 1_000);
      assert.equal(ticks.length, fired);
      assert.equal(ticks[0] % 1_000, 0);
    },
  },
  {
    name: "cron ticks follow the time zone, within the startAt/endAt window",
    async fn({ open, key }) {
      await using q = await open();
      const utc = await q.schedule(echo, [1], { cron: "0 9 * * *", id: `utc-${key}` });
      const tokyo = await q.schedule(echo, [2], {
        cron: "0 9 * * *",
        tz: "Asia/Tokyo",
        id: `tokyo-${key}`,
      });
      const byId = new Map((await q.schedules()).map((s) => [s.id, s]));
      const utcNext = byId.get(utc)!.nextRunAt!;
      assert.deepEqual([utcNext.getUTCHours(), utcNext.getUTCMinutes()], [9, 0], "UTC by default");
      const tokyoNext = byId.get(tokyo)!.nextRunAt!;
      assert.equal(byId.get(tokyo)!.tz, "Asia/Tokyo");
      assert.deepEqual([tokyoNext.getUTCHours(), tokyoNext.getUTCMinutes()], [0, 0]);
      for (const next of [utcNext, tokyoNext]) {
        assert.ok(next.getTime() > Date.now() && next.getTime() <= Date.now() + 86_400_000);
      }
      // Not before startAt …
      const startAt = Date.now() + 10 * 60_000;
      const later = await q.schedule(echo, [3], { every: "1s", startAt, id: `start-${key}` });
      assert.equal((await q.stores.queue.getSchedule(later))!.nextRunAt, startAt);
      // … and not after endAt: the first tick fires, then there are no more.
      const ending = await q.schedule(echo, [4], {
        every: "1s",
        endAt: Date.now() + 500,
        id: `end-${key}`,
      });
      assert.equal(await q.tick(), 1);
      assert.equal((await tickTasks(q, ending)).length, 1);
      const ended = (await q.schedules()).find((s) => s.id === ending)!;
      assert.equal(ended.nextRunAt, undefined, "no tick after endAt");
      assert.ok(ended.lastRunAt instanceof Date);
      assert.equal(await q.tick(), 0);
    },
  },
];
