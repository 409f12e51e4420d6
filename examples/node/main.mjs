// OmniQ under Node: enqueue on the embedded SQLite default, run a worker, print results.
//
//   deno task build:npm            (in the repository: writes dist/npm/)
//   cd examples/node && npm install && npm start
//
// Node 22.13 and later use the built-in node:sqlite; on Node 20 the optional better-sqlite3
// package (in package.json) is the driver.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OmniQ } from "omniq";
import { album, flaky, thumbnail } from "./tasks.mjs";

const dir = await mkdtemp(join(tmpdir(), "omniq-node-example-"));
const q = await OmniQ.open({
  backend: `sqlite:${join(dir, "omniq.db")}`,
  tasks: [new URL("./tasks.mjs", import.meta.url).href],
});
try {
  const photos = await Promise.all(
    ["beach.jpg", "city.jpg", "forest.jpg"].map((f) => q.enqueue(thumbnail, [f, [64, 256]])),
  );
  // Runs once every thumbnail is done.
  const albumId = await q.enqueue(album, ["holiday", photos.length], { dependsOn: photos });
  const flakyId = await q.enqueue(flaky, [21]);
  console.log(`enqueued ${photos.length + 2} tasks`);

  let retries = 0;
  q.on("retrying", () => retries++);
  // Thumbnails in a thread pool (node:worker_threads), the rest in this event loop.
  const threads = q.worker({ type: "thread", queues: ["images"], concurrency: 2 });
  const local = q.worker({ concurrency: 4 });
  await Promise.all([threads.start(), local.start()]);

  for (const id of photos) {
    const { file, sizes } = await q.wait(id);
    console.log(`thumbnail ${file}: ${sizes.join(", ")}`);
  }
  console.log(`album: ${JSON.stringify(await q.wait(albumId))}`);
  console.log(`flaky: ${await q.wait(flakyId)} after ${retries} retry`);
  const { total } = await q.stats();
  const states = Object.entries(total).filter(([, n]) => n > 0);
  console.log(`states: ${states.map(([state, n]) => `${n} ${state}`).join(", ")}`);
  await Promise.all([threads.stop(), local.stop()]);
} finally {
  await q.close();
  await rm(dir, { recursive: true });
}
