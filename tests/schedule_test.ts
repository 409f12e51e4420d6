// Tick arithmetic and schedule validation, without an engine.
import assert from "node:assert/strict";
import { ConfigError } from "../mod.ts";
import { nextTick, resolveSchedule, tickTaskId } from "../src/schedule.ts";

const T0 = Date.parse("2026-01-01T00:00:00Z");
const resolve = (options: Parameters<typeof resolveSchedule>[2], now = T0) =>
  resolveSchedule("job", [], options, {}, {}, now);

Deno.test("schedule: interval ticks are anchored at creation (or startAt)", () => {
  const s = resolve({ every: "30s" }, T0 + 5);
  assert.equal(s.nextRunAt, T0 + 5);
  assert.equal(nextTick(s, T0 + 5), T0 + 30_005);
  assert.equal(nextTick(s, T0 + 30_004), T0 + 30_005);
  assert.equal(nextTick(s, T0 + 30_005), T0 + 60_005);
  const later = resolve({ every: "1m", startAt: T0 + 120_000 });
  assert.equal(later.nextRunAt, T0 + 120_000);
  assert.equal(nextTick(later, T0 + 120_000), T0 + 180_000);
});

Deno.test("schedule: cron ticks, seconds field, time zones, endAt", () => {
  const s = resolve({ cron: "*/5 * * * *" }, T0 + 1);
  assert.equal(s.nextRunAt, T0 + 5 * 60_000);
  const sec = resolve({ cron: "*/10 * * * * *" }, T0 + 1);
  assert.equal(sec.nextRunAt, T0 + 10_000);
  // 09:00 in New York on a Monday in March (before DST) is 14:00 UTC.
  const ny = resolve(
    { cron: "0 9 * * 1", tz: "America/New_York" },
    Date.parse("2026-03-01T00:00:00Z"),
  );
  assert.equal(new Date(ny.nextRunAt!).toISOString(), "2026-03-02T14:00:00.000Z");
  const bounded = resolve({ every: "1m", endAt: T0 + 90_000 });
  assert.equal(nextTick(bounded, T0 + 60_000), undefined);
  assert.equal(tickTaskId("s1", 42), "s1:42");
});

Deno.test("schedule: bad input is a ConfigError naming the field", () => {
  const cases: [Parameters<typeof resolveSchedule>[2], RegExp][] = [
    [{ cron: "61 * * * *" }, /^cron: invalid cron expression "61 \* \* \* \*"/],
    [{ cron: "* * *" }, /^cron: expected 5 fields/],
    [{ cron: "* * * * *", tz: "Mars/Olympus" }, /^tz: unknown time zone "Mars\/Olympus"/],
    [{ every: "500ms" }, /^every: expected at least 1s, got 500ms/],
    [{ every: "soon" }, /^every: expected a duration/],
    [{ cron: "* * * * *", every: "1m" }, /^cron, every: give one of them, not both/],
    [{}, /^cron, every: expected one of them/],
    [{ every: "1m", misfire: "twice" as "once" }, /^misfire: expected "skip" or "once"/],
    [{ every: "1m", id: "a:b" }, /^id: a schedule id may not contain ":"/],
    [{ every: "1m", priority: 12 }, /^priority: expected an integer from 0 to 9/],
    [{ every: "1m", startAt: T0 + 10, endAt: T0 }, /^endAt: expected a time after startAt/],
    // deno-lint-ignore no-explicit-any
    [{ evry: "1m" } as any, /did you mean "every"/],
  ];
  for (const [options, message] of cases) {
    assert.throws(() => resolve(options), (e: unknown) => {
      assert.ok(e instanceof ConfigError, `${JSON.stringify(options)}: ${e}`);
      assert.match((e as Error).message, message);
      return true;
    });
  }
});
