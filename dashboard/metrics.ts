/**
 * Metrics of a queue in the Prometheus text format: the tasks by queue and state (from
 * `stats()`), counters of completed, failed and retried attempts and a histogram of handler
 * durations (from the lifecycle events this process sees, its own and those of other
 * processes sharing the event store), and each queue's lag (how long its oldest queued
 * task has been due).
 *
 * @example Serve them from your own server
 * ```ts
 * import { OmniQ } from "@omniq/omniq";
 * import { QueueMetrics } from "@omniq/omniq/dashboard";
 * const q = await OmniQ.open("memory:");
 * const metrics = new QueueMetrics(q);
 * const text = await metrics.text();
 * console.assert(text.includes("omniq_tasks{"));
 * metrics.close();
 * await q.close();
 * ```
 *
 * @module
 */

import type { OmniQ } from "../src/omniq.ts";
import type { EventRecord, TaskState } from "../src/types.ts";
import { TASK_STATES } from "../src/types.ts";

/** The upper bounds of the handler duration histogram, in seconds. */
export const DURATION_BUCKETS: readonly number[] = [
  0.001,
  0.005,
  0.01,
  0.05,
  0.1,
  0.5,
  1,
  5,
  10,
  60,
  300,
];

/** How many seconds of per-second throughput a {@linkcode QueueMetrics} keeps. */
export const THROUGHPUT_SECONDS = 600;

/** Attempts whose start is remembered to time them; older ones are forgotten first. */
const MAX_STARTED = 100_000;

/** Completed and failed attempts in one second. */
export interface ThroughputPoint {
  /** The second, as epoch ms. */
  at: number;
  /** Attempts that completed in it. */
  completed: number;
  /** Tasks that failed for good in it. */
  failed: number;
}

interface QueueCounters {
  completed: number;
  failed: number;
  retried: number;
  buckets: number[];
  sum: number;
  count: number;
}

/**
 * Counts what the lifecycle events say, from the moment it is made: a queue's completed,
 * failed and retried attempts, handler durations (from each attempt's `started` event to
 * its `completed`, `failed` or `retrying` event), and per-second throughput for the
 * dashboard's chart. {@linkcode QueueMetrics.text} adds the gauges read from the store.
 */
export class QueueMetrics {
  readonly #q: OmniQ;
  readonly #off: () => void;
  readonly #queues = new Map<string, QueueCounters>();
  readonly #started = new Map<string, number>();
  readonly #seconds: ThroughputPoint[] = [];

  /**
   * Start counting the events of a queue.
   *
   * @param q The queue.
   */
  constructor(q: OmniQ) {
    this.#q = q;
    this.#off = q.on("*", (event) => this.#count(event));
  }

  #counters(queue: string): QueueCounters {
    let c = this.#queues.get(queue);
    if (!c) {
      c = {
        completed: 0,
        failed: 0,
        retried: 0,
        buckets: DURATION_BUCKETS.map(() => 0),
        sum: 0,
        count: 0,
      };
      this.#queues.set(queue, c);
    }
    return c;
  }

  #second(at: number): ThroughputPoint {
    const second = Math.floor(at / 1000) * 1000;
    const last = this.#seconds.at(-1);
    if (last && last.at === second) return last;
    if (last && last.at > second) {
      // A late event (another process's, polled): count it in its second if still kept.
      return this.#seconds.find((p) => p.at === second) ?? last;
    }
    const point = { at: second, completed: 0, failed: 0 };
    this.#seconds.push(point);
    while (this.#seconds.length > THROUGHPUT_SECONDS) this.#seconds.shift();
    return point;
  }

  #count(event: EventRecord): void {
    const { type, taskId, queue } = event;
    if (taskId === undefined || queue === undefined) return;
    const key = `${taskId}#${event.attempt ?? 0}`;
    if (type === "started") {
      this.#started.set(key, event.at.getTime());
      if (this.#started.size > MAX_STARTED) {
        this.#started.delete(this.#started.keys().next().value!);
      }
      return;
    }
    if (type !== "completed" && type !== "failed" && type !== "retrying") return;
    const c = this.#counters(queue);
    if (type === "completed") {
      c.completed++;
      this.#second(event.at.getTime()).completed++;
    } else if (type === "failed") {
      c.failed++;
      this.#second(event.at.getTime()).failed++;
    } else c.retried++;
    const started = this.#started.get(key);
    if (started === undefined) return;
    this.#started.delete(key);
    const seconds = Math.max(0, event.at.getTime() - started) / 1000;
    c.sum += seconds;
    c.count++;
    DURATION_BUCKETS.forEach((le, i) => {
      if (seconds <= le) c.buckets[i]++;
    });
  }

  /** Completed and failed tasks per second, oldest first, over the last minutes. */
  throughput(): ThroughputPoint[] {
    return this.#seconds.map((p) => ({ ...p }));
  }

  /**
   * The metrics in the Prometheus text exposition format (version 0.0.4).
   *
   * @returns The text, ending with a newline.
   */
  async text(): Promise<string> {
    const stats = await this.#q.stats();
    const lines: string[] = [];
    const family = (name: string, type: string, help: string) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);

    family("omniq_tasks", "gauge", "Tasks in the store, by queue and state.");
    const queues = Object.keys(stats.queues).sort();
    for (const queue of queues) {
      for (const state of TASK_STATES) {
        const n = stats.queues[queue][state as TaskState] ?? 0;
        lines.push(`omniq_tasks{queue="${label(queue)}",state="${state}"} ${n}`);
      }
    }

    family("omniq_queue_lag_seconds", "gauge", "How long the oldest queued task has been due.");
    const now = Date.now();
    for (const queue of queues) {
      if (!stats.queues[queue].queued) continue;
      const [oldest] = await this.#q.list({ queue, state: "queued", limit: 1 });
      if (!oldest) continue;
      const lag = Math.max(0, now - oldest.runAt.getTime()) / 1000;
      lines.push(`omniq_queue_lag_seconds{queue="${label(queue)}"} ${lag}`);
    }

    const counted = [...this.#queues.keys()].sort();
    const counter = (name: string, help: string, pick: (c: QueueCounters) => number) => {
      family(name, "counter", help);
      for (const queue of counted) {
        lines.push(`${name}{queue="${label(queue)}"} ${pick(this.#queues.get(queue)!)}`);
      }
    };
    counter(
      "omniq_tasks_completed_total",
      "Attempts that completed, since this process began counting.",
      (c) => c.completed,
    );
    counter(
      "omniq_tasks_failed_total",
      "Tasks that failed for good, since this process began counting.",
      (c) => c.failed,
    );
    counter(
      "omniq_tasks_retried_total",
      "Attempts that failed and were scheduled again, since this process began counting.",
      (c) => c.retried,
    );

    const h = "omniq_task_duration_seconds";
    family(h, "histogram", "Handler time of an attempt, from its start to its outcome.");
    for (const queue of counted) {
      const c = this.#queues.get(queue)!;
      const q = label(queue);
      DURATION_BUCKETS.forEach((le, i) =>
        lines.push(`${h}_bucket{queue="${q}",le="${le}"} ${c.buckets[i]}`)
      );
      lines.push(`${h}_bucket{queue="${q}",le="+Inf"} ${c.count}`);
      lines.push(`${h}_sum{queue="${q}"} ${c.sum}`);
      lines.push(`${h}_count{queue="${q}"} ${c.count}`);
    }
    return lines.join("\n") + "\n";
  }

  /** Stop counting. */
  close(): void {
    this.#off();
  }
}

/** A label value, escaped as the text format asks (backslash, quote, newline). */
function label(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
