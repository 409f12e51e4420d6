/**
 * OpenTelemetry tracing, through `@opentelemetry/api` only (this is the one module that
 * imports it): a span for each enqueue call, and one for each attempt, whose parent is the
 * enqueue span of its task even in another process. The enqueue span's context travels in
 * the task record as a W3C `traceparent` (`links.trace`). Without an SDK registered by the
 * application nothing records and nothing is stored: the API is not even loaded until an
 * SDK has registered itself in the API's global slot, which {@linkcode tracingOn} checks.
 *
 * Span names and attributes: `omniq.enqueue` (kind producer; `omniq.task.name`,
 * `omniq.task.id` for one task, `omniq.queue`, `omniq.batch.size`) and `omniq.run <name>`
 * (kind consumer; `omniq.task.id`, `omniq.task.name`, `omniq.queue`, `omniq.attempt`,
 * `omniq.outcome`: `completed`, `failed`, `retrying`, `cancelled` or `handed_back`).
 *
 * @module
 */

import type { Context, Span, Tracer, TracerProvider } from "@opentelemetry/api";
import type { ClaimedTask, NewTask } from "./backend.ts";

type Api = typeof import("@opentelemetry/api");

/** Where `@opentelemetry/api` (major version 1) keeps what an SDK registers. */
const API_GLOBAL = Symbol.for("opentelemetry.js.api.1");

/** Whether an application has registered a tracer provider (an SDK) with the API. */
export function tracingOn(): boolean {
  const slot = (globalThis as Record<symbol, { trace?: unknown } | undefined>)[API_GLOBAL];
  return slot?.trace !== undefined;
}

let api: Api | undefined;
const loadApi = async () => api ??= await import("@opentelemetry/api");

/** The instrumentation scope's name. */
export const TRACER_NAME = "omniq";

let tracer: { provider: TracerProvider; tracer: Tracer } | undefined;

/** The tracer, again for a new global provider (after `trace.disable()`). */
function omniqTracer({ trace }: Api): Tracer {
  const provider = trace.getTracerProvider();
  if (tracer?.provider !== provider) tracer = { provider, tracer: provider.getTracer(TRACER_NAME) };
  return tracer.tracer;
}

/** A span's context as a W3C `traceparent` header value. */
function traceparent({ trace }: Api, span: Span): string | undefined {
  const c = span.spanContext();
  if (!trace.isSpanContextValid(c)) return undefined;
  const flags = (c.traceFlags & 0xff).toString(16).padStart(2, "0");
  return `00-${c.traceId}-${c.spanId}-${flags}`;
}

/** The remote context a `traceparent` names, or the root context when it names none. */
function fromTraceparent(
  { trace, ROOT_CONTEXT, TraceFlags }: Api,
  value: string | undefined,
): Context {
  const m = value === undefined
    ? null
    : /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value);
  if (!m) return ROOT_CONTEXT;
  const spanContext = {
    traceId: m[1],
    spanId: m[2],
    traceFlags: parseInt(m[3], 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!trace.isSpanContextValid(spanContext)) return ROOT_CONTEXT;
  return trace.setSpanContext(ROOT_CONTEXT, spanContext);
}

/**
 * Trace one enqueue call (when {@linkcode tracingOn}): start its span and stamp each task
 * with its context.
 *
 * @param tasks The tasks it stores (their `links.trace` is set when the span records).
 * @returns The end of the span (with the error, if the call failed).
 */
export async function traceEnqueue(tasks: NewTask[]): Promise<(error?: unknown) => void> {
  const otel = await loadApi();
  const { SpanKind, SpanStatusCode } = otel;
  const span = omniqTracer(otel).startSpan("omniq.enqueue", { kind: SpanKind.PRODUCER });
  if (!span.isRecording()) return () => span.end();
  const first = tasks[0];
  span.setAttribute("omniq.batch.size", tasks.length);
  if (first) {
    span.setAttribute("omniq.task.name", first.task);
    span.setAttribute("omniq.queue", first.queue);
    if (tasks.length === 1) span.setAttribute("omniq.task.id", first.id);
  }
  const parent = traceparent(otel, span);
  if (parent !== undefined) {
    for (const t of tasks) t.links = { ...t.links, trace: parent };
  }
  return (error) => {
    if (error !== undefined) {
      span.recordException(error instanceof Error ? error : String(error));
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
    }
    span.end();
  };
}

/** How an attempt ended, for its span. */
export type AttemptOutcome = "completed" | "failed" | "retrying" | "cancelled" | "handed_back";

/** An attempt's span: run the handler inside it, then end it with the outcome. */
export interface AttemptSpan {
  /** Run `fn` with the attempt's span active (the handler's own spans become children). */
  within<T>(fn: () => T): T;
  /** End the span. */
  end(outcome: AttemptOutcome, error?: unknown): void;
}

/** The span of an attempt nobody traces. */
export const UNTRACED: AttemptSpan = { within: (fn) => fn(), end: () => {} };

/**
 * Start an attempt's span (when {@linkcode tracingOn}), a child of its task's enqueue span
 * when the record carries one.
 *
 * @param task The claimed task.
 * @returns The span, or a stand-in that does nothing when the SDK does not record it.
 */
export async function traceAttempt(task: ClaimedTask): Promise<AttemptSpan> {
  const otel = await loadApi();
  const { context, SpanKind, SpanStatusCode, trace } = otel;
  const span = omniqTracer(otel).startSpan(`omniq.run ${task.task}`, {
    kind: SpanKind.CONSUMER,
    attributes: {
      "omniq.task.id": task.id,
      "omniq.task.name": task.task,
      "omniq.queue": task.queue,
      "omniq.attempt": task.attempts,
    },
  }, fromTraceparent(otel, task.links?.trace));
  if (!span.isRecording()) return UNTRACED;
  const active = trace.setSpan(context.active(), span);
  return {
    within: (fn) => context.with(active, fn),
    end: (outcome, error) => {
      span.setAttribute("omniq.outcome", outcome);
      if (error !== undefined && outcome !== "completed") {
        span.recordException(error instanceof Error ? error : String(error));
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error)?.message });
      }
      span.end();
    },
  };
}
