// Compile-time typing of tasks: `deno check` (which `deno test` runs first) fails this file if
// a wrong argument list compiles, or if `wait` loses the handler's result type.
import assert from "node:assert/strict";
import { defineTask, OmniQ, type TaskId } from "../mod.ts";

const add = defineTask("types-add", (a: number, b: number) => a + b);
const greet = defineTask(
  "types-greet",
  (name: string) => Promise.resolve({ greeting: `hi ${name}` }),
);

Deno.test("types: enqueue checks arguments and wait returns the handler's type", async () => {
  await using q = await OmniQ.open("memory:");
  const id: TaskId<number> = await q.enqueue(add, [1, 2]);
  const hello = await q.enqueue(greet, ["ada"]);
  // @ts-expect-error a string where a number is expected
  await q.enqueue(add, ["x", 2]).catch(() => {});
  // @ts-expect-error too few arguments
  await q.enqueue(add, [1]).catch(() => {});
  await q.run({ until: "idle" });
  const sum: number = await q.wait(id);
  const { greeting }: { greeting: string } = await q.wait(hello);
  // @ts-expect-error the result is a number, not a string
  const wrong: string = await q.wait(id);
  assert.equal(sum, 3);
  assert.equal(greeting, "hi ada");
  assert.equal(wrong, 3);
});
