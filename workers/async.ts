/**
 * The async worker: handlers run on this event loop, `concurrency` at a time. It claims
 * batches to fill free slots, renews the running tasks' leases (one timer for all, see
 * `leases.ts`), enforces timeouts through the handler's AbortSignal, retries with backoff,
 * and sweeps stalled and expired tasks.
 *
 * This is the role of the seed's gevent pool: thousands of cheap concurrent I/O-bound tasks.
 *
 * @module
 */

import type { ClaimedTask } from "../src/backend.ts";
import { TaskCancelledError, TimeoutError } from "../src/errors.ts";
import type { WorkerHost } from "../src/host.ts";
import { newId } from "../src/id.ts";
import { delay, withResolvers } from "../src/kit/async.ts";
import type { ResolvedWorkerOptions } from "../src/options.ts";
import { HANDED_BACK, Outcomes } from "../src/outcome.ts";
import { type Executor, InlineExecutor } from "./executor.ts";
import { LeaseKeeper } from "./leases.ts";
import { checkProgress, type RunMessage } from "./runner.ts";
import { traceAttempt, tracingOn, UNTRACED } from "../src/telemetry.ts";

/** How often stored progress may change, per task. */
const PROGRESS_INTERVAL = 200;

/** A worker's life: `start()` it, `stop()` it; `done` settles when its loop ends. */
export interface Worker {
  /** The worker's id (in claims, for diagnostics). */
  readonly id: string;
  /**
   * Start claiming; resolves once the worker is listening: its wake-up subscription is set
   * up (where the engine has one) and it has looked at its queues once, so work enqueued
   * after this reaches it without waiting for a poll.
   */
  start(): Promise<void>;
  /** Stop claiming, let running tasks finish (up to `shutdownGrace`), then resolve. */
  stop(): Promise<void>;
  /** Settles when the worker's loop has ended. */
  readonly done: Promise<void>;
  /** How many tasks run now. */
  readonly active: number;
  /** The outcomes this worker has written since it started (for progress displays). */
  readonly counts: Readonly<WorkerCounts>;
}

/** What a worker's attempts ended in, counted since it started. */
export interface WorkerCounts {
  /** Attempts that completed. */
  completed: number;
  /** Tasks that failed for good. */
  failed: number;
  /** Attempts that failed and were scheduled again. */
  retried: number;
}

/** Options of {@linkcode AsyncWorker} beyond the worker options. */
export interface AsyncWorkerMode {
  /** End when nothing is due or running (see `OmniQ.run`). */
  untilIdle?: boolean;
  /** Where handlers run: this thread by default, or a thread or process pool. */
  executor?: Executor;
}

/** The async worker. */
export class AsyncWorker implements Worker {
  /** The worker's id. */
  readonly id: string = `w-${newId()}`;
  #host: WorkerHost;
  #executor: Executor;
  #outcomes: Outcomes;
  #leases: LeaseKeeper;
  #options: ResolvedWorkerOptions;
  #untilIdle: boolean;
  /**
   * Attempts in progress, by their claimed task (each claim makes a new object): a task
   * retried at once can be claimed again while its previous attempt still writes its
   * outcome, so the id alone is not enough.
   */
  #running = new Map<ClaimedTask, Promise<void>>();
  /** Attempts whose handler runs now (a slot each); those in `#running` may be writing an outcome. */
  #handling = new Set<ClaimedTask>();
  #stop = new AbortController();
  #started = false;
  /** Settles once the loop is subscribed to wake-ups and has made its first claim. */
  #listening = withResolvers<void>();
  #done: Promise<void> = Promise.resolve();
  #slotFreed: (() => void) | undefined;
  /**
   * Counts handlers that finished and outcomes written: a claim that either happened during
   * may have missed a free slot or the dependents an outcome released.
   */
  #ended = 0;
  /** Tasks this worker sent back for a retry, watched by `untilIdle`. */
  #retrying = new Map<string, number>();

  /** Make a worker over a host; `OmniQ.worker()` is the way users get one. */
  constructor(host: WorkerHost, options: ResolvedWorkerOptions, mode: AsyncWorkerMode = {}) {
    this.#host = host;
    this.#options = options;
    this.#untilIdle = mode.untilIdle ?? false;
    this.#executor = mode.executor ?? new InlineExecutor();
    this.#outcomes = new Outcomes(host, options.lease);
    this.#leases = new LeaseKeeper(host, options.lease);
  }

  /** How many tasks run now. */
  get active(): number {
    return this.#running.size;
  }

  /** The outcomes this worker has written since it started. */
  get counts(): Readonly<WorkerCounts> {
    return this.#counts;
  }

  #counts: WorkerCounts = { completed: 0, failed: 0, retried: 0 };

  /** Settles when the loop has ended. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Start the loop (and the scheduler, unless `scheduler: false`); see {@linkcode Worker.start}. */
  start(): Promise<void> {
    if (this.#started) return this.#listening.promise;
    this.#started = true;
    const loops = [this.#loop()];
    if (this.#options.scheduler && !this.#untilIdle) loops.push(this.#schedulerLoop());
    this.#done = Promise.all(loops).then(() => {});
    // A loop that ends before it listened (stopped at once) must not leave start() hanging.
    const listened = () => this.#listening.resolve();
    this.#done.then(listened, listened);
    return this.#listening.promise;
  }

  /**
   * Fire due schedule ticks, then sleep until the next one (at most `pollInterval`, since
   * other processes may add schedules). Exactly-once firing is the engine's compare-and-set.
   */
  async #schedulerLoop(): Promise<void> {
    const stop = this.#stop.signal;
    const { pollInterval } = this.#options;
    while (!stop.aborted) {
      let wait = pollInterval;
      try {
        await this.#host.tick();
        const next = await this.#host.queue.nextScheduleAt();
        if (next !== undefined) wait = Math.min(wait, Math.max(0, next - this.#host.clock.now()));
      } catch (error) {
        this.#host.report(error, "scheduler");
      }
      await this.#host.idleScheduler(wait, stop);
    }
  }

  /** Stop claiming and drain. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#slotFreed?.();
    await this.#done;
  }

  async #loop(): Promise<void> {
    const { concurrency, queues, lease, pollInterval, sweepInterval } = this.#options;
    const stop = this.#stop.signal;
    let nextSweep = 0;
    let errorDelay = 0;
    // Wake-ups from other processes (the engine's hook, if it has one) end an idle wait.
    let woken = false;
    let wake: (() => void) | undefined;
    const unsubscribe = this.#host.queue.subscribe?.(queues, () => {
      woken = true;
      wake?.();
    });
    const idle = async (ms: number): Promise<void> => {
      if (!unsubscribe) return await this.#host.idle(ms, stop);
      if (woken || stop.aborted) return;
      const waiting = new AbortController();
      const end = () => waiting.abort();
      stop.addEventListener("abort", end, { once: true });
      wake = end;
      try {
        await this.#host.idle(ms, waiting.signal);
      } finally {
        if (wake === end) wake = undefined;
        stop.removeEventListener("abort", end);
      }
    };
    if (unsubscribe?.ready) await unsubscribe.ready;
    if (this.#untilIdle && this.#options.scheduler) {
      // Due ticks fire once; `run({ until: "idle" })` never waits for future ones.
      await this.#host.tick().catch((error) => this.#host.report(error, "scheduler"));
    }
    while (!stop.aborted) {
      const now = Date.now();
      if (now >= nextSweep) {
        nextSweep = now + sweepInterval;
        await this.#host.sweep();
      }
      const free = concurrency - this.#handling.size;
      const endedBefore = this.#ended;
      let claimed = 0;
      if (free > 0) {
        woken = false;
        try {
          const { tasks, effects } = await this.#host.queue.claim({
            queues,
            limit: free,
            lease,
            worker: this.id,
          });
          errorDelay = 0;
          claimed = tasks.length;
          await this.#host.apply(effects);
          for (const task of tasks) this.#launch(task);
          this.#listening.resolve();
        } catch (error) {
          this.#listening.resolve();
          // A lost connection or a locked file: back off, keep the worker alive.
          this.#host.report(error, "claim");
          errorDelay = Math.min(Math.max(errorDelay * 2, 50), 5_000);
          await delay(errorDelay, { signal: stop });
          continue;
        }
        if (claimed === free) continue;
        // An attempt ended while the claim was out: its slot is free, and the dependents
        // its outcome released may have been committed after the claim looked. Claim again
        // rather than wait (or, for `untilIdle`, stop with work left).
        if (this.#ended !== endedBefore) continue;
      }
      if (this.#untilIdle && this.#running.size === 0 && claimed === 0) {
        const wait = await this.#pendingRetry();
        if (wait === undefined) break;
        await idle(Math.min(wait, pollInterval));
        continue;
      }
      if (this.#handling.size >= concurrency) {
        await new Promise<void>((resolve) => (this.#slotFreed = resolve));
        this.#slotFreed = undefined;
        continue;
      }
      let wait = Math.min(pollInterval, Math.max(0, nextSweep - Date.now()));
      const due = await this.#host.queue.nextDue(queues).catch(() => undefined);
      if (due !== undefined) wait = Math.min(wait, Math.max(0, due - this.#host.clock.now()));
      // A slot freed or an outcome written while the loop looked: claim now, not after a wait.
      if (this.#ended !== endedBefore) continue;
      if (this.#running.size > 0) {
        // Wake when a slot frees too, so a full batch is claimed again at once.
        await Promise.race([
          idle(wait),
          new Promise<void>((resolve) => (this.#slotFreed = resolve)),
        ]);
        this.#slotFreed = undefined;
      } else {
        await idle(wait);
      }
    }
    unsubscribe?.();
    await this.#drain();
    this.#leases.close();
    await this.#executor.close();
  }

  /**
   * For `untilIdle`: ms until a retry this worker scheduled is due, or `undefined`. A task
   * that left this worker's queues (dead-lettered) or whose queue was paused is not waited for.
   */
  async #pendingRetry(): Promise<number | undefined> {
    if (this.#retrying.size === 0) return undefined;
    let soonest: number | undefined;
    const { queues } = this.#options;
    const paused = await this.#host.queue.pausedQueues();
    for (const [id] of this.#retrying) {
      const task = await this.#host.queue.get(id);
      if (
        !task || (task.state !== "scheduled" && task.state !== "queued") ||
        !queues.includes(task.queue) || paused.includes(task.queue)
      ) {
        this.#retrying.delete(id);
        continue;
      }
      const wait = Math.max(0, task.runAt - this.#host.clock.now());
      soonest = soonest === undefined ? wait : Math.min(soonest, wait);
    }
    return soonest;
  }

  async #drain(): Promise<void> {
    if (this.#running.size === 0) return;
    const all = Promise.allSettled(this.#running.values());
    const grace = new AbortController();
    const timer = setTimeout(() => grace.abort(), this.#options.shutdownGrace);
    await Promise.race([all, new Promise((r) => grace.signal.addEventListener("abort", r))]);
    clearTimeout(timer);
    if (grace.signal.aborted) {
      // Past the grace: abort the handlers; each attempt is handed back to its queue.
      for (const abort of this.#abortAll) abort();
      await all;
    }
  }

  #abortAll = new Set<() => void>();

  #launch(task: ClaimedTask): void {
    const run = this.#execute(task).catch((error) => this.#host.report(error, `task ${task.id}`))
      .finally(() => {
        this.#ended++;
        this.#handling.delete(task);
        this.#running.delete(task);
        this.#slotFreed?.();
      });
    this.#handling.add(task);
    this.#running.set(task, run);
  }

  async #execute(task: ClaimedTask): Promise<void> {
    // First, before the attempt takes a lease, timer or slot that `finally` must give back.
    const span = tracingOn() ? await traceAttempt(task) : UNTRACED;
    const host = this.#host;
    const controller = new AbortController();
    const untrack = host.track(task.id, controller);
    const abortOnStop = () => controller.abort(HANDED_BACK);
    this.#abortAll.add(abortOnStop);
    // The lease, renewed by the worker's one timer: losing it (a re-claim elsewhere, or a
    // cancel) aborts the handler, and its outcome is discarded.
    let lost = false;
    this.#leases.hold(task, () => {
      lost = true;
      controller.abort(new TaskCancelledError(task.id, "the lease was lost or cancelled"));
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (task.timeout !== undefined) {
      timer = setTimeout(
        () =>
          controller.abort(new TimeoutError(`task ${task.id} timed out after ${task.timeout}ms`)),
        task.timeout,
      );
    }
    // Made on the first report: most handlers report no progress.
    let progress: ProgressReporter | undefined;
    const report = (fraction: number) =>
      (progress ??= new ProgressReporter(host, task)).report(fraction);
    try {
      let outcome: { ok: true; value: Uint8Array } | { ok: false; error: unknown };
      try {
        outcome = {
          ok: true,
          value: await span.within(() => this.#invoke(task, controller.signal, report)),
        };
      } catch (error) {
        outcome = { ok: false, error };
      }
      // The handler is done: its slot is free while its outcome is written, so the next
      // claim goes out beside the outcome's write instead of after it. The outcome is dated
      // now, before any task claimed into the freed slot starts.
      const finishedAt = this.#host.clock.now();
      this.#handling.delete(task);
      this.#ended++;
      this.#slotFreed?.();
      await progress?.flush();
      // Cancelled, lease lost, or handed back at shutdown: another outcome rules, or the
      // lapsed lease makes the task run again elsewhere.
      const reason = controller.signal.reason;
      if (lost || reason instanceof TaskCancelledError) {
        span.end("cancelled", reason);
        return;
      }
      if (reason === HANDED_BACK) {
        span.end("handed_back");
        await this.#outcomes.handBack(task);
      } else if (outcome.ok) {
        span.end("completed");
        await this.#outcomes.complete(task, outcome.value, finishedAt);
        this.#counts.completed++;
      } else {
        const verdict = await this.#outcomes.fail(task, outcome.error, finishedAt);
        if (verdict && "retryAt" in verdict) this.#retrying.set(task.id, verdict.retryAt);
        const retried = verdict !== undefined && "retryAt" in verdict;
        // No verdict: the claim was lost meanwhile, and the outcome is another's.
        span.end(!verdict ? "cancelled" : retried ? "retrying" : "failed", outcome.error);
        if (retried) this.#counts.retried++;
        else if (verdict) this.#counts.failed++;
      }
    } finally {
      this.#leases.release(task);
      clearTimeout(timer);
      progress?.stop();
      untrack();
      this.#abortAll.delete(abortOnStop);
    }
  }

  /** Run the attempt through the executor: its dependencies' results travel as bytes. */
  async #invoke(
    task: ClaimedTask,
    signal: AbortSignal,
    report: (fraction: number) => void,
  ): Promise<Uint8Array> {
    const dependencies: [string, Uint8Array][] = [];
    for (const dep of task.dependsOn) {
      const result = await this.#host.results.get(dep);
      if (result?.value === undefined) continue;
      dependencies.push([dep, result.value]);
      const name = task.links?.names?.[dep];
      if (name !== undefined) dependencies.push([name, result.value]);
    }
    const message: RunMessage = {
      id: task.id,
      task: task.task,
      queue: task.queue,
      attempt: task.attempts,
      payload: task.payload,
      dependencies,
      codec: this.#host.codec,
    };
    if (task.links?.pipe !== undefined) message.pipe = task.links.pipe;
    return await this.#executor.run(message, signal, report);
  }
}

/** Stores progress at most every {@linkcode PROGRESS_INTERVAL} ms, keeping the latest. */
class ProgressReporter {
  #host: WorkerHost;
  #task: ClaimedTask;
  #pending: number | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> = Promise.resolve();
  #last = 0;

  constructor(host: WorkerHost, task: ClaimedTask) {
    this.#host = host;
    this.#task = task;
  }

  report(fraction: number): void {
    this.#pending = checkProgress(fraction);
    if (this.#timer !== undefined) return;
    const wait = Math.max(0, this.#last + PROGRESS_INTERVAL - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, wait);
  }

  #write(): void {
    const value = this.#pending;
    if (value === undefined) return;
    this.#pending = undefined;
    this.#last = Date.now();
    this.#writing = this.#writing.then(async () => {
      try {
        const effects = await this.#host.queue.progress(this.#task.id, this.#task.token, value);
        if (effects) await this.#host.apply(effects);
      } catch (error) {
        this.#host.report(error, `progress of ${this.#task.id}`);
      }
    });
  }

  /** Write what is pending now. */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#write();
    }
    await this.#writing;
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
