/**
 * One worker process of `bench/scaling.ts`: opens the store at the URL given as its
 * argument, prints `ready`, waits for a line on stdin, then runs no-op tasks at
 * concurrency 10 until none is left.
 *
 * @module
 */
import { defineTask, OmniQ } from "../mod.ts";

defineTask("bench-scale-noop", (_i: number) => undefined);

const q = await OmniQ.open(Deno.args[0]);
console.log("ready");
const reader = Deno.stdin.readable.getReader();
await reader.read();
reader.releaseLock();
await q.run({ until: "idle", concurrency: 10 });
await q.close();
