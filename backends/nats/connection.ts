// Opening a `nats:` store: connect (through transport.ts), check JetStream, create the
// buckets and the event stream when missing, and start the mirror.

import { jetstream, jetstreamManager, StorageType } from "@nats-io/jetstream";
import type { JetStreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { errorText } from "./codec.ts";
import type { Resolved } from "./options.ts";
import { NatsStore } from "./store.ts";
import { connectNats, type NatsConnection } from "./transport.ts";

/**
 * Connect to the servers the options name and open the store on them.
 *
 * @param names The checked options.
 * @returns The store, its mirror caught up.
 * @throws {ConfigError} When the server is unreachable, refuses the credentials or has no
 *   JetStream; the message names the server and the cause.
 */
export async function connectStore(names: Resolved): Promise<NatsStore> {
  const where = names.servers.join(",");
  let nc: NatsConnection;
  try {
    nc = await connectNats({
      servers: names.servers,
      token: names.token,
      user: names.user,
      pass: names.pass,
      name: "omniq",
      timeout: names.timeout,
    });
  } catch (error) {
    throw new ConfigError(`nats: cannot connect to ${where}: ${errorText(error)}`, {
      cause: error,
    });
  }
  try {
    let jsm: JetStreamManager;
    try {
      jsm = await jetstreamManager(nc, { timeout: names.timeout });
    } catch (error) {
      throw new ConfigError(
        `nats: ${where} has no JetStream (start nats-server with -js): ${errorText(error)}`,
        { cause: error },
      );
    }
    const js = jetstream(nc, { timeout: names.timeout });
    const kvm = new Kvm(js);
    const kv = await kvm.create(names.bucket, {
      history: 1,
      storage: StorageType.File,
      timeout: names.timeout,
    });
    const rkv = await kvm.create(names.resultsBucket, {
      history: 1,
      storage: StorageType.File,
      timeout: names.timeout,
    });
    await ensureStream(jsm, names.stream);
    const store = new NatsStore(nc, js, jsm, kv, rkv, names);
    await store.startWatch();
    await store.sync();
    return store;
  } catch (error) {
    await nc.close().catch(() => {});
    if (error instanceof OmniQError) throw error;
    throw new ConfigError(`nats: ${where}: ${errorText(error)}`, { cause: error });
  }
}

async function ensureStream(jsm: JetStreamManager, name: string): Promise<void> {
  try {
    await jsm.streams.info(name);
    return;
  } catch {
    // Missing: create it below.
  }
  try {
    await jsm.streams.add({ name, subjects: [`${name}.>`], storage: StorageType.File });
  } catch (error) {
    // Another process may have created it meanwhile.
    await jsm.streams.info(name).catch(() => {
      throw error;
    });
  }
}
