// The listeners of `OmniQ.on`: an event this process stored reaches a listener once, even
// when the poller (which reads other processes' events from the store) reads it before the
// step that stored it hands it over — the window is wide on a slow store, such as a bucket.
import assert from "node:assert/strict";
import { OmniQ } from "../mod.ts";
import { Listeners } from "../src/listeners.ts";
import type { EventRecord } from "../src/types.ts";

Deno.test("listeners: an event the poller read first is not delivered again by its step", async () => {
  await using q = await OmniQ.open("memory:");
  const errors: unknown[] = [];
  const listeners = new Listeners(q.stores.events, 5, (e) => errors.push(e));
  const heard: EventRecord[] = [];
  const off = listeners.add("*", (e) => heard.push(e));
  try {
    // Stored now, handed to deliver() only after the poller has read it.
    const stored = await q.stores.events.append([
      { type: "schedule_fired", at: Date.now(), data: { scheduleId: "s" } },
    ]);
    const deadline = Date.now() + 5_000;
    while (heard.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(heard.length, 1, "the poller delivered it");
    listeners.deliver(stored);
    assert.equal(heard.length, 1, "delivered once");
    // The usual order: delivered by its step, then read by the poller, once in all.
    const next = await q.stores.events.append([{ type: "progress", at: Date.now() }]);
    listeners.deliver(next);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(heard.map((e) => e.type), ["schedule_fired", "progress"]);
    assert.deepEqual(errors, []);
  } finally {
    off();
    listeners.stop();
  }
});
