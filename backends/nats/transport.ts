/**
 * The one place the `nats:` engine picks its NATS transport: the Node transport, which Deno
 * runs through its npm support. To run on `@nats-io/transport-deno` instead, replace this
 * module's body; nothing else in the engine names a transport.
 *
 * @module
 */

import {
  type NatsConnection,
  NatsConnectionImpl,
  setTransportFactory,
} from "@nats-io/transport-node";
import { nodeResolveHost, NodeTransport } from "@nats-io/transport-node/lib/node_transport.js";
import type { Socket } from "node:net";

export type { NatsConnection } from "@nats-io/transport-node";

/** How to reach and log in to a NATS server. */
export interface NatsConnectOptions {
  /** Server addresses, `host:port` or `nats://host:port`. */
  servers: string[];
  /** A token, if the server wants one. */
  token?: string;
  /** A user name, if the server wants one. */
  user?: string;
  /** That user's password. */
  pass?: string;
  /** The connection's name, shown in the server's monitoring. */
  name?: string;
  /** How long the first connection may take, in ms. */
  timeout: number;
}

function ignore(): void {}

/**
 * The Node transport with one guard. It removes every socket listener before destroying a
 * closed socket, and under Deno's `node:net` a reset that arrives after that (a server that
 * refused the credentials and hung up) is an `error` event nobody listens to, which would
 * end the process. Each socket keeps an error listener that ignores it: the transport has
 * already reported the close.
 */
class GuardedTransport extends NodeTransport {
  override async dial(hp: { hostname: string; port: number }): Promise<Socket> {
    const socket = await super.dial(hp);
    const remove = socket.removeAllListeners.bind(socket);
    socket.removeAllListeners = (...args: Parameters<Socket["removeAllListeners"]>) => {
      remove(...args);
      return socket.on("error", ignore);
    };
    socket.on("error", ignore);
    return socket;
  }
}

/**
 * Connect to NATS: a first connection that fails throws; once connected, the client
 * reconnects for ever (a lost connection or a restarted server is waited out).
 *
 * @param options Servers, credentials and the connect timeout.
 * @returns The connection.
 *
 * @example
 * ```ts ignore
 * import { connectNats } from "./transport.ts";
 * const nc = await connectNats({ servers: ["127.0.0.1:4222"], timeout: 3_000 });
 * await nc.close();
 * ```
 */
export function connectNats(options: NatsConnectOptions): Promise<NatsConnection> {
  setTransportFactory({ factory: () => new GuardedTransport(), dnsResolveFn: nodeResolveHost });
  return NatsConnectionImpl.connect({
    servers: options.servers,
    token: options.token,
    user: options.user,
    pass: options.pass,
    name: options.name,
    timeout: options.timeout,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    reconnectJitter: 100,
  });
}
