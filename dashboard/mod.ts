/**
 * A web dashboard in the box: {@linkcode serveDashboard} serves a page and a small JSON
 * API from the process that holds the queue, on `127.0.0.1` by default, with no build step
 * and no other service. It shows counts by queue and state with the throughput of the last
 * minutes and the workers seen running tasks, a filtered and paged task list, each task's arguments, result or error and event
 * timeline, and the schedules; it retries and cancels tasks and pauses, resumes and removes
 * schedules, each after a confirmation. Events reach the page as server-sent events.
 * `/metrics` serves Prometheus text ({@linkcode QueueMetrics}, which your own server can
 * use too).
 *
 * Security: it binds to loopback unless told otherwise and then accepts only loopback
 * `Host` names (against DNS rebinding); a token, when set, is required on every request
 * (`Authorization: Bearer …`, or a cookie the page sets from `/?token=…`) and is required
 * to bind anywhere else; actions are `POST` requests that carry the page's CSRF secret;
 * `readOnly` refuses every action. The page builds its elements from text, so a payload
 * such as `<script>` shows as text.
 *
 * @example Serve the dashboard of a queue
 * ```ts
 * import { OmniQ } from "@omniq/omniq";
 * import { serveDashboard } from "@omniq/omniq/dashboard";
 * const q = await OmniQ.open("memory:");
 * const dashboard = await serveDashboard(q, { port: 0 });
 * const overview = await fetch(new URL("/api/overview", dashboard.url));
 * console.assert(overview.ok);
 * await overview.body?.cancel();
 * await dashboard.close();
 * await q.close();
 * ```
 *
 * @module
 */

import { ConfigError } from "../src/errors.ts";
import { checkKeys } from "../src/options.ts";
import type { OmniQ } from "../src/omniq.ts";
import { runtime } from "../src/runtime/mod.ts";
import { type DashboardRoutes, dashboardRoutes } from "./handler.ts";
import { QueueMetrics } from "./metrics.ts";

export { QueueMetrics, type ThroughputPoint } from "./metrics.ts";

/** Where and how {@linkcode serveDashboard} serves. */
export interface DashboardOptions {
  /**
   * The port; 0 takes a free one.
   * @default {8710}
   */
  port?: number;
  /**
   * The address to bind. Anything but loopback needs a `token`.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * A secret every request must carry (at least 16 characters). The CLI reads it from
   * `--token` or `OMNIQ_DASHBOARD_TOKEN`.
   */
  token?: string;
  /**
   * Show, never change: retry, cancel and the schedule actions are refused.
   * @default {false}
   */
  readOnly?: boolean;
}

/** A running dashboard. */
export interface DashboardServer extends AsyncDisposable {
  /** Its address, e.g. `http://127.0.0.1:8710/`. */
  readonly url: string;
  /** The port it listens on. */
  readonly port: number;
  /** The address it is bound to. */
  readonly hostname: string;
  /** Stop serving (the queue stays open). */
  close(): Promise<void>;
}

/** A dashboard to mount in a server of your own. */
export interface DashboardHandler {
  /** Answer one request; never throws. */
  handle(request: Request): Promise<Response>;
  /** Stop counting events and end the open event streams. */
  close(): void;
}

/** The default port. */
export const DEFAULT_DASHBOARD_PORT = 8710;

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1"];

/** Whether an address is loopback only. */
export function isLoopback(hostname: string): boolean {
  return LOOPBACK_NAMES.includes(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

interface Checked {
  port: number;
  hostname: string;
  token?: string;
  readOnly: boolean;
}

function check(options: DashboardOptions): Checked {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError(`dashboard: expected an options object, got ${String(options)}`);
  }
  checkKeys(options, ["port", "hostname", "token", "readOnly"], "dashboard");
  const {
    port = DEFAULT_DASHBOARD_PORT,
    hostname = "127.0.0.1",
    token,
    readOnly = false,
  } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ConfigError(`dashboard port: expected a whole number from 0 to 65535, got ${port}`);
  }
  if (typeof hostname !== "string" || hostname === "" || /[\s/]/.test(hostname)) {
    throw new ConfigError(
      `dashboard hostname: expected an address, got ${JSON.stringify(hostname)}`,
    );
  }
  if (token !== undefined && (typeof token !== "string" || token.length < 16)) {
    throw new ConfigError("dashboard token: expected a string of at least 16 characters");
  }
  if (!isLoopback(hostname) && token === undefined) {
    throw new ConfigError(
      `dashboard: binding to ${hostname}, which is not loopback, needs a token ` +
        "(--token or OMNIQ_DASHBOARD_TOKEN)",
    );
  }
  if (typeof readOnly !== "boolean") {
    throw new ConfigError(`dashboard readOnly: expected true or false, got ${String(readOnly)}`);
  }
  return { port, hostname, token, readOnly };
}

function routesFor(q: OmniQ, checked: Checked): { routes: DashboardRoutes; metrics: QueueMetrics } {
  const metrics = new QueueMetrics(q);
  const csrf = crypto.randomUUID().replaceAll("-", "") + crypto.randomUUID().replaceAll("-", "");
  const routes = dashboardRoutes(q, metrics, {
    token: checked.token,
    csrf,
    readOnly: checked.readOnly,
    hosts: isLoopback(checked.hostname) ? [...LOOPBACK_NAMES, checked.hostname] : undefined,
  });
  return { routes, metrics };
}

/**
 * The dashboard as a `fetch`-style handler, for a server of your own (it does no `Host`
 * check: put it behind your own).
 *
 * @param q The queue it shows.
 * @param options A token and read-only mode (the address is yours).
 * @returns The handler; close it when done.
 * @throws {ConfigError} When an option is not valid.
 */
export function dashboardHandler(
  q: OmniQ,
  options: Pick<DashboardOptions, "token" | "readOnly"> = {},
): DashboardHandler {
  const checked = check({ ...options, hostname: "127.0.0.1", port: 0 });
  const { routes, metrics } = routesFor(q, { ...checked, hostname: "0.0.0.0" });
  return {
    handle: routes.handle,
    close: () => {
      routes.close();
      metrics.close();
    },
  };
}

/**
 * Serve the dashboard of a queue.
 *
 * @param q The queue it shows (it stays open when the dashboard closes).
 * @param options The address, a token, read-only mode.
 * @returns The running server.
 * @throws {ConfigError} When an option is not valid, or a non-loopback address has no token.
 * @throws {Error} When the address cannot be bound.
 */
export async function serveDashboard(
  q: OmniQ,
  options: DashboardOptions = {},
): Promise<DashboardServer> {
  const checked = check(options);
  const { routes, metrics } = routesFor(q, checked);
  let server;
  try {
    server = await runtime.serveHttp(checked, routes.handle);
  } catch (error) {
    metrics.close();
    throw error;
  }
  const host = checked.hostname.includes(":") ? `[${checked.hostname}]` : checked.hostname;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      routes.close();
      metrics.close();
      await server.close();
    })();
    return closed;
  };
  return {
    url: `http://${host}:${server.port}/`,
    port: server.port,
    hostname: checked.hostname,
    close,
    [Symbol.asyncDispose]: close,
  };
}
