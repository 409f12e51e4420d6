// An idle worker waits on timers and wake-ups, never in a busy loop: over two idle seconds
// this process spends a small fraction of a core.
import assert from "node:assert/strict";
import { cpuUsage } from "node:process";
import { OmniQ } from "../mod.ts";

for (const url of ["memory:", "sqlite"]) {
  Deno.test(`idle: a worker with nothing to do uses ~0% CPU (${url})`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "omniq-idle-" });
    const q = await OmniQ.open(url === "memory:" ? url : `sqlite:${dir}/idle.db`);
    try {
      const w = q.worker({ concurrency: 10 });
      // start() resolves once the worker has claimed once and waits: start-up work is done.
      await w.start();
      const before = cpuUsage();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 2_000));
      const used = cpuUsage(before);
      const wall = performance.now() - t0;
      const share = (used.user + used.system) / 1000 / wall;
      console.log(`idle worker on ${url}: ${(share * 100).toFixed(2)}% of a core`);
      assert.ok(share < 0.05, `an idle worker used ${(share * 100).toFixed(1)}% of a core`);
      await w.stop();
    } finally {
      await q.close();
      await Deno.remove(dir, { recursive: true });
    }
  });
}
