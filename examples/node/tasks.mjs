// The example's tasks, in a module of their own so the thread pool's workers load them too.

import { defineTask } from "omniq";

/** A resize stand-in: some CPU work, then the sizes made. */
export const thumbnail = defineTask("thumbnail", (file, sizes) => {
  let hash = 0;
  for (let i = 0; i < 200_000; i++) hash = (hash * 31 + file.length + i) | 0;
  return { file, sizes: sizes.map((s) => `${file}@${s}`), hash };
}, { queue: "images" });

/** Adds what the thumbnails it depends on made into one album. */
export const album = defineTask("album", (name, count) => ({ name, photos: count }));

/** Fails on its first attempt, to show a retry. */
export const flaky = defineTask("flaky", (n) => {
  if (globalThis.omniqFlakyFailed !== true) {
    globalThis.omniqFlakyFailed = true;
    throw new Error("the service is briefly down");
  }
  return n * 2;
}, { retries: 2, backoff: "10ms" });
