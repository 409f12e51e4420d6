/**
 * The reference for OmniQ's `nats:` engine: raw JetStream doing the same no-op work on the
 * same server, with none of a task queue's bookkeeping (no records, results, events, retries,
 * priorities, delays or dependencies):
 *
 * - enqueue: `js.publish` to a work-queue stream (file storage), one message at a time, and in
 *   batches of 500 publishes in flight at once (NATS 2.9 has no batch publish);
 * - process: one durable pull consumer (explicit ack) read with `consume()`, each message
 *   acknowledged with `ackAck()` (the server confirms, as OmniQ's completion is confirmed),
 *   ten at a time, timed until the stream is empty;
 * - enqueue→start latency (p50/p99): a single message published to an idle, running consumer.
 *
 * @module
 */
import {
  AckPolicy,
  jetstream,
  jetstreamManager,
  type JsMsg,
  RetentionPolicy,
  StorageType,
} from "@nats-io/jetstream";
import { connectNats } from "../backends/nats/transport.ts";

/** Raw JetStream's figures, in the shape of `throughput.ts`'s rows. */
export interface JetStreamRow {
  /** What was measured. */
  engine: string;
  /** Publish one message per call, messages/s. */
  enqueueOne: number;
  /** Publish 500 at a time, messages/s. */
  enqueueMany: number;
  /** Consume and acknowledge, ten in flight, messages/s. */
  process: number;
  /** Publish→receive latency on an idle consumer, median, ms. */
  p50: number;
  /** Publish→receive latency, 99th percentile, ms. */
  p99: number;
}

const BATCH = 500;
const CONCURRENCY = 10;

/**
 * Measure raw JetStream publish/consume on the server at `url` (`nats://host:port`).
 *
 * @param url The server.
 * @param options Messages per throughput phase and latency samples.
 * @returns The reference row.
 * @throws When a message is lost (the stream is not emptied).
 */
export async function measureJetStream(
  url: string,
  options: { tasks: number; samples: number },
): Promise<JetStreamRow> {
  const { tasks, samples } = options;
  const server = new URL(url);
  const nc = await connectNats({ servers: [server.host], name: "omniq-bench-raw", timeout: 5_000 });
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  const row: JetStreamRow = {
    engine: "raw JetStream publish/consume (reference)",
    enqueueOne: 0,
    enqueueMany: 0,
    process: 0,
    p50: 0,
    p99: 0,
  };
  const payload = new TextEncoder().encode('{"i":0}');
  let streams = 0;
  /** A fresh work-queue stream and its durable consumer. */
  const fresh = async () => {
    const name = `RAW_${crypto.randomUUID().slice(0, 8)}_${++streams}`;
    await jsm.streams.add({
      name,
      subjects: [`${name}.work`],
      retention: RetentionPolicy.Workqueue,
      storage: StorageType.File,
    });
    await jsm.consumers.add(name, {
      durable_name: "workers",
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: 1_000,
    });
    return { name, subject: `${name}.work` };
  };
  try {
    {
      const { name, subject } = await fresh();
      const t = performance.now();
      for (let i = 0; i < tasks; i++) await js.publish(subject, payload);
      row.enqueueOne = tasks / ((performance.now() - t) / 1000);
      await jsm.streams.delete(name);
    }
    {
      const { name, subject } = await fresh();
      let t = performance.now();
      for (let i = 0; i < tasks; i += BATCH) {
        const n = Math.min(BATCH, tasks - i);
        await Promise.all(Array.from({ length: n }, () => js.publish(subject, payload)));
      }
      row.enqueueMany = tasks / ((performance.now() - t) / 1000);
      const consumer = await js.consumers.get(name, "workers");
      t = performance.now();
      const messages = await consumer.consume({ max_messages: CONCURRENCY * 10 });
      let done = 0;
      const inFlight = new Set<Promise<unknown>>();
      for await (const m of messages) {
        const p: Promise<unknown> = handle(m).then(() => inFlight.delete(p));
        inFlight.add(p);
        if (inFlight.size >= CONCURRENCY) await Promise.race(inFlight);
        if (++done === tasks) break;
      }
      await Promise.all(inFlight);
      row.process = tasks / ((performance.now() - t) / 1000);
      await messages.close();
      const left = (await jsm.streams.info(name)).state.messages;
      if (left !== 0) throw new Error(`raw JetStream: ${left} messages left unacknowledged`);
      await jsm.streams.delete(name);
    }
    {
      const { name, subject } = await fresh();
      const consumer = await js.consumers.get(name, "workers");
      const messages = await consumer.consume({ max_messages: CONCURRENCY });
      let onReceive: ((at: number) => void) | undefined;
      const reading = (async () => {
        for await (const m of messages) {
          onReceive?.(performance.now());
          m.ack();
        }
      })();
      await new Promise((r) => setTimeout(r, 200));
      const times: number[] = [];
      for (let i = 0; i < samples; i++) {
        const received = new Promise<number>((resolve) => (onReceive = resolve));
        const t0 = performance.now();
        await js.publish(subject, payload);
        times.push((await received) - t0);
      }
      times.sort((a, b) => a - b);
      row.p50 = times[Math.floor(times.length * 0.5)];
      row.p99 = times[Math.floor(times.length * 0.99)];
      await messages.close();
      await reading;
      await jsm.streams.delete(name);
    }
  } finally {
    await nc.close();
  }
  return row;
}

/** The no-op work: acknowledge, confirmed by the server. */
async function handle(m: JsMsg): Promise<void> {
  await m.ackAck();
}
