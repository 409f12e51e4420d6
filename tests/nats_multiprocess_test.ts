// Processes sharing one NATS JetStream store: 4 worker processes complete each of 10,000
// tasks exactly once, and three scheduler processes fire each tick exactly once. Each test
// uses a fresh name prefix (its own buckets and stream), deleted at the end.
import { openNats } from "../backends/nats.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import { processesExactlyOnce } from "./fixtures/two_processes.ts";
import { testServerUrl } from "./servers.ts";

const NET = ["--allow-net=127.0.0.1", "--allow-env"];

function freshUrl(): string {
  return `${testServerUrl("nats")}?prefix=mp_${crypto.randomUUID().replaceAll("-", "")}`;
}

async function drop(url: string): Promise<void> {
  await (await openNats(url)).destroy();
}

Deno.test("nats: four processes complete each of 10,000 tasks exactly once", async () => {
  const url = freshUrl();
  try {
    await processesExactlyOnce(() => url, { processes: 4, tasks: 10_000, extra: NET });
  } finally {
    await drop(url);
  }
});

Deno.test("nats: three scheduler processes fire each tick exactly once", async () => {
  const url = freshUrl();
  try {
    await threeSchedulersExactlyOnce(() => url, NET);
  } finally {
    await drop(url);
  }
});
