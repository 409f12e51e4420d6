/**
 * The dashboard's requests: the page, a small JSON API over the public `OmniQ` calls, a
 * stream of events (server-sent events) and the Prometheus metrics, behind the checks of
 * {@linkcode DashboardAccess}. It is a `fetch`-style function (`Request` in, `Response`
 * out), so any server can mount it; `serve.ts` gives it one.
 *
 * | route | what |
 * |---|---|
 * | `GET /` | the page (`GET /app.js`: its script) |
 * | `GET /api/overview` | counts by queue and state, paused queues, throughput, schedules |
 * | `GET /api/tasks?queue&state&task&since&until&limit&offset` | a page of tasks |
 * | `GET /api/tasks/:id` | a task, its result (a large value cut, with a link) and events |
 * | `GET /api/tasks/:id/result` | the whole result, as JSON |
 * | `POST /api/tasks/:id/retry`, `…/cancel` | the actions |
 * | `GET /api/schedules` | the schedules |
 * | `POST /api/schedules/:id/pause`, `…/resume`, `…/remove` | their actions |
 * | `POST /api/queues/:name/pause`, `…/resume` | pause or resume a queue |
 * | `GET /api/stream` | every new event, as server-sent events |
 * | `GET /metrics` | Prometheus text |
 *
 * @module
 */

import type { OmniQ } from "../src/omniq.ts";
import type { EventRecord, ListOptions, TaskState } from "../src/types.ts";
import { TASK_STATES } from "../src/types.ts";
import type { QueueMetrics } from "./metrics.ts";
import { APP_JS, page } from "./page.ts";

/** The largest result value, as JSON, that a task's page shows whole. */
export const RESULT_PREVIEW_BYTES = 16_384;

/** The most tasks one page of the task list holds. */
export const MAX_PAGE = 500;

/** Who may call, and what: the token, the CSRF secret, read-only mode, the allowed hosts. */
export interface DashboardAccess {
  /** Required on every request when set (`Authorization: Bearer`, or the page's cookie). */
  token?: string;
  /** The secret a mutating request carries in `X-OmniQ-CSRF` (the page holds it). */
  csrf: string;
  /** Refuse every action. */
  readOnly: boolean;
  /** `Host` header names accepted (without port); `undefined` accepts any. */
  hosts?: readonly string[];
}

/** How long the overview lists a worker after it was last seen running a task. */
export const WORKERS_SEEN_MS = 5 * 60_000;

/** The most running tasks the overview reads to see the workers. */
const RUNNING_SAMPLE = 1_000;

/** A worker the overview has seen running tasks. */
export interface SeenWorker {
  /** Its id. */
  id: string;
  /** Tasks it runs now. */
  running: number;
  /** When it was last seen running one (epoch ms). */
  lastSeen: number;
}

/** The cookie that carries the token for the page and its requests. */
export const TOKEN_COOKIE = "omniq_dashboard";

const json = (body: unknown, status = 200, headers: HeadersInit = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });

const problem = (status: number, error: string) => json({ error }, status);

/** A request the handler refuses, with the status it answers. */
class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** Compare two strings in time that does not depend on where they differ. */
function sameSecret(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

function cookie(request: Request, name: string): string | undefined {
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return decodeURIComponent(v.join("="));
  }
  return undefined;
}

/** The security headers of every answer. */
const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cache-control": "no-store",
};

/** The dashboard's requests, as one function, and the end of its event streams. */
export interface DashboardRoutes {
  /** Answer a request; never throws (a failing store answers 503). */
  handle(request: Request): Promise<Response>;
  /** End the open event streams (before a server shuts down, which waits for them). */
  close(): void;
}

/**
 * Make the dashboard's request handler.
 *
 * @param q The queue it shows.
 * @param metrics The event counters (throughput, `/metrics`).
 * @param access Who may call, and what.
 * @returns The handler.
 */
export function dashboardRoutes(
  q: OmniQ,
  metrics: QueueMetrics,
  access: DashboardAccess,
): DashboardRoutes {
  const routes = new Routes(q, metrics, access);
  const handle = async (request: Request) => {
    let response: Response;
    try {
      response = await routes.answer(request);
    } catch (error) {
      if (error instanceof Refusal) response = problem(error.status, error.message);
      else {
        // The store is down, or a call failed: say so, keep serving.
        response = problem(503, `the store did not answer: ${(error as Error)?.message ?? error}`);
      }
    }
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) {
      if (!response.headers.has(k)) response.headers.set(k, v);
    }
    return response;
  };
  return { handle, close: () => routes.closeStreams() };
}

class Routes {
  readonly #streams = new Set<() => void>();
  readonly #workers = new Map<string, SeenWorker>();

  constructor(
    readonly q: OmniQ,
    readonly metrics: QueueMetrics,
    readonly access: DashboardAccess,
  ) {}

  closeStreams(): void {
    for (const end of [...this.#streams]) end();
  }

  async answer(request: Request): Promise<Response> {
    const url = new URL(request.url);
    this.#checkHost(request);
    // The page's first load may carry the token in the query: keep it in a cookie and
    // drop it from the address bar.
    const given = url.searchParams.get("token");
    if (url.pathname === "/" && given !== null && this.access.token !== undefined) {
      if (!sameSecret(given, this.access.token)) throw new Refusal(401, "wrong token");
      return new Response(null, {
        status: 303,
        headers: {
          location: "/",
          "set-cookie": `${TOKEN_COOKIE}=${
            encodeURIComponent(given)
          }; HttpOnly; SameSite=Strict; Path=/`,
        },
      });
    }
    this.#checkToken(request);
    const path = url.pathname.split("/").filter((p) => p !== "").map(decodePart);
    if (request.method === "POST") {
      this.#checkAction(request);
      return await this.#act(path);
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      throw new Refusal(405, `method ${request.method} is not allowed`);
    }
    if (path.length === 0) {
      return new Response(page(this.access.csrf, this.access.readOnly), {
        headers: {
          "content-type": "text/html; charset=utf-8",
          "content-security-policy":
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; " +
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'",
        },
      });
    }
    if (path[0] === "app.js" && path.length === 1) {
      return new Response(APP_JS, {
        headers: { "content-type": "text/javascript; charset=utf-8" },
      });
    }
    if (path[0] === "metrics" && path.length === 1) {
      return new Response(await this.metrics.text(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    if (path[0] !== "api") throw new Refusal(404, `no such page: ${url.pathname}`);
    const [, what, id, part] = path;
    if (what === "overview" && path.length === 2) return json(await this.#overview());
    if (what === "tasks" && path.length === 2) return json(await this.#tasks(url.searchParams));
    if (what === "tasks" && path.length === 3) return json(await this.#task(id));
    if (what === "tasks" && path.length === 4 && part === "result") return await this.#result(id);
    if (what === "schedules" && path.length === 2) return json(await this.q.schedules());
    if (what === "stream" && path.length === 2) return this.#stream();
    throw new Refusal(404, `no such API: ${url.pathname}`);
  }

  #checkHost(request: Request): void {
    const hosts = this.access.hosts;
    if (!hosts) return;
    const host = (request.headers.get("host") ?? "").replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
    if (!hosts.includes(host)) {
      // A page on another site that points its own name at this address (DNS rebinding).
      throw new Refusal(403, `host ${JSON.stringify(host)} is not this dashboard's`);
    }
  }

  #checkToken(request: Request): void {
    const token = this.access.token;
    if (token === undefined) return;
    const auth = request.headers.get("authorization") ?? "";
    const bearer = auth.startsWith("Bearer ") ? auth.slice(7) : undefined;
    const given = bearer ?? cookie(request, TOKEN_COOKIE);
    if (given === undefined) throw new Refusal(401, "a token is required");
    if (!sameSecret(given, token)) throw new Refusal(401, "wrong token");
  }

  #checkAction(request: Request): void {
    if (this.access.readOnly) throw new Refusal(403, "the dashboard is read-only");
    const csrf = request.headers.get("x-omniq-csrf");
    if (csrf === null || !sameSecret(csrf, this.access.csrf)) {
      throw new Refusal(403, "a missing or wrong X-OmniQ-CSRF header");
    }
  }

  async #act(path: string[]): Promise<Response> {
    const [api, what, id, action] = path;
    if (api !== "api" || path.length !== 4 || id === "") {
      throw new Refusal(404, `no such action: /${path.join("/")}`);
    }
    if (what === "tasks") {
      if (!(await this.q.get(id))) throw new Refusal(404, `no task with id ${JSON.stringify(id)}`);
      if (action === "retry") return json({ ok: await this.q.retry(id) });
      if (action === "cancel") return json({ ok: await this.q.cancel(id) });
    }
    if (what === "schedules") {
      if (action === "pause") return json({ ok: await this.q.pauseSchedule(id) });
      if (action === "resume") return json({ ok: await this.q.resumeSchedule(id) });
      if (action === "remove") return json({ ok: await this.q.unschedule(id) });
    }
    if (what === "queues") {
      if (action === "pause") return json({ ok: await this.q.pauseQueue(id) });
      if (action === "resume") return json({ ok: await this.q.resumeQueue(id) });
    }
    throw new Refusal(404, `no such action: /${path.join("/")}`);
  }

  async #overview() {
    const [stats, schedules, running] = await Promise.all([
      this.q.stats(),
      this.q.schedules(),
      this.q.list({ state: "running", limit: RUNNING_SAMPLE }),
    ]);
    return {
      stats,
      throughput: this.metrics.throughput(),
      schedules: { total: schedules.length, paused: schedules.filter((s) => s.paused).length },
      workers: this.#seeWorkers(running),
      now: Date.now(),
    };
  }

  /** The workers running tasks now, and those seen doing so in the last minutes. */
  #seeWorkers(running: { worker?: string }[]): SeenWorker[] {
    const now = Date.now();
    for (const w of this.#workers.values()) w.running = 0;
    for (const { worker } of running) {
      if (worker === undefined) continue;
      const seen = this.#workers.get(worker) ?? { id: worker, running: 0, lastSeen: now };
      seen.running++;
      seen.lastSeen = now;
      this.#workers.set(worker, seen);
    }
    for (const [id, w] of this.#workers) {
      if (now - w.lastSeen > WORKERS_SEEN_MS) this.#workers.delete(id);
    }
    return [...this.#workers.values()].sort((a, b) =>
      b.lastSeen - a.lastSeen || (a.id < b.id ? -1 : 1)
    )
      .map((w) => ({ ...w }));
  }

  #tasks(params: URLSearchParams) {
    const known = ["queue", "state", "task", "since", "until", "limit", "offset"];
    for (const key of params.keys()) {
      if (!known.includes(key)) throw new Refusal(400, `unknown filter ${JSON.stringify(key)}`);
    }
    const filter: ListOptions = {};
    const queue = params.get("queue");
    if (queue) filter.queue = queue;
    const task = params.get("task");
    if (task) filter.task = task;
    const states = params.getAll("state").flatMap((s) => s.split(",")).filter((s) => s);
    for (const s of states) {
      if (!TASK_STATES.includes(s as TaskState)) {
        throw new Refusal(
          400,
          `state: ${JSON.stringify(s)} is not one of ${TASK_STATES.join(", ")}`,
        );
      }
    }
    if (states.length) filter.state = states as TaskState[];
    const since = time(params, "since");
    if (since !== undefined) filter.since = since;
    const until = time(params, "until");
    if (until !== undefined) filter.until = until;
    filter.limit = count(params, "limit", 50, 1, MAX_PAGE);
    filter.offset = count(params, "offset", 0, 0, Number.MAX_SAFE_INTEGER);
    return this.q.list(filter).then((tasks) => ({ tasks, ...filter }));
  }

  async #task(id: string) {
    const task = await this.q.get(id);
    if (!task) throw new Refusal(404, `no task with id ${JSON.stringify(id)}`);
    const result = await this.q.result(id);
    const events: EventRecord[] = [];
    for await (const e of this.q.events({ taskId: id, limit: 500 })) events.push(e);
    let shown: unknown = result;
    if (result && result.value !== undefined) {
      const text = safeJson(result.value);
      if (text.length > RESULT_PREVIEW_BYTES) {
        shown = {
          ...result,
          value: undefined,
          preview: text.slice(0, RESULT_PREVIEW_BYTES),
          truncated: text.length,
          download: `/api/tasks/${encodeURIComponent(id)}/result`,
        };
      }
    }
    return { task, result: shown, events };
  }

  async #result(id: string): Promise<Response> {
    const result = await this.q.result(id);
    if (!result) throw new Refusal(404, `no result for task ${JSON.stringify(id)}`);
    return new Response(safeJson(result), {
      headers: {
        "content-type": "application/json; charset=utf-8",
        "content-disposition": `attachment; filename="result-${id.replace(/[^\w.-]/g, "_")}.json"`,
      },
    });
  }

  #stream(): Response {
    const encoder = new TextEncoder();
    let off = () => {};
    let beat: ReturnType<typeof setInterval> | undefined;
    let cancel = () => {};
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const send = (text: string) => {
          try {
            controller.enqueue(encoder.encode(text));
          } catch {
            stop();
          }
        };
        const stop = () => {
          off();
          clearInterval(beat);
          this.#streams.delete(end);
        };
        const end = () => {
          stop();
          try {
            controller.close();
          } catch {
            // Already closed by the client.
          }
        };
        this.#streams.add(end);
        cancel = stop;
        off = this.q.on("*", (event) => send(`id: ${event.id}\ndata: ${safeJson(event)}\n\n`));
        beat = setInterval(() => send(": beat\n\n"), 15_000);
        send(": open\n\n");
      },
      cancel: () => cancel(),
    });
    return new Response(body, {
      headers: { "content-type": "text/event-stream", "cache-control": "no-store" },
    });
  }
}

/** A path segment, percent-decoded; a malformed one is the client's error, not the store's. */
function decodePart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Refusal(400, `a malformed path segment: ${JSON.stringify(part)}`);
  }
}

/** A whole number from a query parameter, within bounds. */
function count(params: URLSearchParams, key: string, fallback: number, min: number, max: number) {
  const raw = params.get(key);
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Refusal(
      400,
      `${key}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

/** A time from a query parameter: epoch ms, or a date the `Date` parser reads (ISO 8601). */
function time(params: URLSearchParams, key: string): number | undefined {
  const raw = params.get(key);
  if (raw === null || raw === "") return undefined;
  const ms = /^\d+$/.test(raw) ? Number(raw) : Date.parse(raw);
  if (!Number.isFinite(ms)) {
    throw new Refusal(
      400,
      `${key}: expected epoch ms or an ISO 8601 time, got ${JSON.stringify(raw)}`,
    );
  }
  return ms;
}

/** JSON of any decoded value: bigints as strings, bytes as arrays of numbers. */
function safeJson(value: unknown): string {
  return JSON.stringify(value, (_k, v) => {
    if (typeof v === "bigint") return v.toString();
    if (v instanceof Uint8Array) return Array.from(v);
    if (v instanceof Map) return Object.fromEntries(v);
    if (v instanceof Set) return [...v];
    return v;
  }) ?? "null";
}
