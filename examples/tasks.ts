/**
 * The quickstart's task module: plain functions registered by name. Every worker type
 * imports a module like this one, so it holds only definitions.
 *
 * @module
 */
import { defineTask, taskContext } from "@omniq/omniq";

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });

/** Charge a customer: urgent, small, on the "high" queue. */
export const charge = defineTask("charge", async (customer: string, cents: number) => {
  await sleep(5 + Math.random() * 10);
  return { customer, cents, receipt: `r-${customer}-${cents}` };
}, { queue: "high", priority: 9 });

/** Make thumbnails: slower, reports progress while it works. */
export const thumbnail = defineTask("thumbnail", async (image: string, sizes: number[]) => {
  const ctx = taskContext();
  for (const [i] of sizes.entries()) {
    await sleep(10 + Math.random() * 20, ctx.signal);
    ctx.progress((i + 1) / sizes.length);
  }
  return sizes.map((s) => `${image}@${s}px`);
});

/** Call a flaky service: fails its first attempt about a third of the time, then retries. */
export const callService = defineTask("call-service", async (endpoint: string) => {
  await sleep(10);
  if (taskContext().attempt === 1 && Math.random() < 0.33) {
    throw new Error(`${endpoint}: 503 Service Unavailable`);
  }
  return { endpoint, status: 200 };
}, { retries: 3, backoff: { type: "exponential", delay: "100ms" } });

/** Build a report: low priority, on the "low" queue; one input is always bad. */
export const report = defineTask("report", async (month: string) => {
  await sleep(20);
  if (month === "2026-13") throw new RangeError(`no such month: ${month}`);
  return { month, rows: month.length * 100 };
}, { queue: "low", retries: 1, backoff: "50ms" });
