// Task ids: 26 characters of lower-case base 32, ordered by creation time and unique, also
// across the refills of the random pool they draw from.
import assert from "node:assert/strict";
import { newId } from "../src/id.ts";

Deno.test("ids: 26 base-32 characters, unique and time-ordered across pool refills", async () => {
  const first = Array.from({ length: 2_000 }, () => newId());
  await new Promise((r) => setTimeout(r, 2));
  const later = newId();
  for (const id of [...first, later]) assert.match(id, /^[0-9a-v]{26}$/);
  assert.equal(new Set(first).size, first.length, "unique");
  // Within a millisecond the counter orders them; across milliseconds the time does.
  const sorted = [...first].sort();
  assert.deepEqual(sorted, first, "each id sorts after the one before it");
  assert.ok(later > first.at(-1)!, "a later id sorts later");
  assert.equal(Number.parseInt(later.slice(0, 10), 32) >= Date.now() - 1_000, true);
});
