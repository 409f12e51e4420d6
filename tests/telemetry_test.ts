// OpenTelemetry (src/telemetry.ts): without an SDK nothing records and nothing is stored;
// with one, an enqueue span and one span per attempt, the attempt a child of its task's
// enqueue span, in this process and across two.
import assert from "node:assert/strict";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import {
  BasicTracerProvider,
  InMemorySpanExporter,
  type ReadableSpan,
  SimpleSpanProcessor,
} from "@opentelemetry/sdk-trace-base";
import { defineTask, OmniQ } from "../mod.ts";
import { openSqlite } from "../backends/sqlite/mod.ts";
import { finishWithin, spawn } from "./fixtures/processes.ts";

defineTask("otel-ok", (n: number) => {
  // A span of the handler's own: a child of the attempt's span.
  trace.getTracer("app").startActiveSpan("app.work", (span) => span.end());
  return n + 1;
});
let failures = 0;
defineTask("otel-flaky", () => {
  if (++failures === 1) throw new Error("first attempt fails");
  return "ok";
}, { retries: 1, backoff: "1ms" });

function register(): { exporter: InMemorySpanExporter; stop: () => Promise<void> } {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return {
    exporter,
    stop: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;

Deno.test("telemetry: without an SDK no span records and the task record carries no trace", async () => {
  const backend = await openSqlite(":memory:");
  await using q = await OmniQ.open({ backend });
  const id = await q.enqueue("otel-ok", [1]);
  assert.equal("links" in (await backend.queue.get(id))!, false);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id), 2);
});

Deno.test("telemetry: an attempt's span is a child of its task's enqueue span", async () => {
  const { exporter, stop } = register();
  try {
    await using q = await OmniQ.open("sqlite::memory:");
    const app = trace.getTracer("app");
    const id = await app.startActiveSpan("app.request", async (span) => {
      try {
        return await q.enqueue("otel-ok", [1]);
      } finally {
        span.end();
      }
    });
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 2);
    const spans = exporter.getFinishedSpans();
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const [request] = byName("app.request");
    const [enqueue] = byName("omniq.enqueue");
    const [run] = byName("omniq.run otel-ok");
    const [work] = byName("app.work");
    assert.ok(request && enqueue && run && work, spans.map((s) => s.name).join(", "));
    const traceId = request.spanContext().traceId;
    for (const s of [enqueue, run, work]) assert.equal(s.spanContext().traceId, traceId, s.name);
    assert.equal(parentOf(enqueue), request.spanContext().spanId);
    assert.equal(parentOf(run), enqueue.spanContext().spanId);
    assert.equal(parentOf(work), run.spanContext().spanId);
    assert.equal(enqueue.attributes["omniq.task.id"], id);
    assert.equal(enqueue.attributes["omniq.task.name"], "otel-ok");
    assert.deepEqual(
      {
        id: run.attributes["omniq.task.id"],
        name: run.attributes["omniq.task.name"],
        queue: run.attributes["omniq.queue"],
        attempt: run.attributes["omniq.attempt"],
        outcome: run.attributes["omniq.outcome"],
      },
      { id, name: "otel-ok", queue: "default", attempt: 1, outcome: "completed" },
    );
  } finally {
    await stop();
  }
});

Deno.test("telemetry: each attempt has its span, a failed one with its error", async () => {
  const { exporter, stop } = register();
  try {
    failures = 0;
    await using q = await OmniQ.open("memory:");
    const id = await q.enqueue("otel-flaky", []);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), "ok");
    const runs = exporter.getFinishedSpans().filter((s) => s.name === "omniq.run otel-flaky");
    assert.deepEqual(
      runs.map((s) => [s.attributes["omniq.attempt"], s.attributes["omniq.outcome"]]),
      [[1, "retrying"], [2, "completed"]],
    );
    assert.equal(runs[0].status.code, 2, "ERROR");
    assert.equal(runs[0].events[0]?.name, "exception");
    const [enqueue] = exporter.getFinishedSpans().filter((s) => s.name === "omniq.enqueue");
    for (const r of runs) assert.equal(parentOf(r), enqueue.spanContext().spanId);
  } finally {
    await stop();
  }
});

Deno.test("telemetry: one trace links an enqueue in one process to the run in another", async () => {
  const dir = await Deno.makeTempDir();
  const { exporter, stop } = register();
  try {
    // The other process enqueues under a span of its own SDK, and prints it.
    const child = spawn(new URL("./fixtures/traced_enqueue.ts", import.meta.url), dir, [dir], [
      "--allow-env", // the SDK reads its OTEL_* settings
    ]);
    const out = await finishWithin(child, 60_000, "the enqueuing process");
    assert.equal(out.code, 0);
    const other = JSON.parse(out.out);
    await using q = await OmniQ.open(`sqlite:${dir}/q.db`);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(other.id), 42);
    const [run] = exporter.getFinishedSpans().filter((s) => s.name === "omniq.run otel-ok");
    assert.equal(run.spanContext().traceId, other.traceId);
    assert.equal(parentOf(run), other.spanId);
    assert.equal(run.parentSpanContext?.isRemote, true);
  } finally {
    await stop();
    await Deno.remove(dir, { recursive: true });
  }
});
