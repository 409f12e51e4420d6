// The dashboard's server (dashboard/): its JSON API over a store with tasks in every state,
// the actions, the security checks, the metrics and the event stream, through real HTTP on
// 127.0.0.1.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { dashboardHandler, type DashboardServer, serveDashboard } from "../dashboard/mod.ts";
import { APP_JS } from "../dashboard/page.ts";
import { ConfigError } from "../src/errors.ts";

defineTask("dash-ok", (n: number) => n * 2);
defineTask("dash-big", () => "x".repeat(100_000));
defineTask("dash-fail", () => {
  throw new TypeError("it broke <b>here</b>");
}, { retries: 0 });
defineTask("dash-echo", (s: string) => s);

const TOKEN = "a-token-of-some-length";

/** A store with tasks in several states, and a dashboard on it. */
async function fixture(options: Parameters<typeof serveDashboard>[1] = {}) {
  const dir = await Deno.makeTempDir();
  const q = await OmniQ.open(`sqlite:${dir}/q.db`);
  const ok = await q.enqueue("dash-ok", [21]);
  const failed = await q.enqueue("dash-fail", [], { queue: "other" });
  const big = await q.enqueue("dash-big", []);
  const script = await q.enqueue("dash-echo", ["<script>alert(1)</script>"]);
  await q.run({ until: "idle", queues: ["default", "other"] });
  const queued = await q.enqueue("dash-ok", [1]);
  const cancelled = await q.enqueue("dash-ok", [2]);
  await q.cancel(cancelled);
  const scheduled = await q.enqueue("dash-ok", [3], { delay: "1h" });
  await q.schedule("dash-ok", [4], { id: "every-hour", every: "1h" });
  const dashboard = await serveDashboard(q, { port: 0, ...options });
  const cleanup = async () => {
    await dashboard.close();
    await q.close();
    await Deno.remove(dir, { recursive: true });
  };
  return { q, dashboard, ids: { ok, failed, big, script, queued, cancelled, scheduled }, cleanup };
}

async function get(d: DashboardServer, path: string, init: RequestInit = {}) {
  const response = await fetch(new URL(path, d.url), init);
  const type = response.headers.get("content-type") ?? "";
  const body = type.includes("json") ? await response.json() : await response.text();
  return { status: response.status, body, headers: response.headers };
}

async function csrfOf(d: DashboardServer, init: RequestInit = {}): Promise<string> {
  const { body } = await get(d, "/", init);
  const match = /name="omniq-csrf" content="([^"]+)"/.exec(body as string);
  assert.ok(match, "the page carries its CSRF secret");
  return match[1];
}

Deno.test("dashboard: the overview counts every state, per queue and in total", async () => {
  const f = await fixture();
  try {
    const { status, body } = await get(f.dashboard, "/api/overview");
    assert.equal(status, 200);
    const stats = await f.q.stats();
    assert.deepEqual(body.stats, stats);
    assert.equal(body.stats.total.completed, 3);
    assert.equal(body.stats.queues.other.failed, 1);
    assert.equal(body.stats.total.queued, 1);
    assert.equal(body.stats.total.cancelled, 1);
    assert.equal(body.stats.total.scheduled, 1);
    assert.deepEqual(body.schedules, { total: 1, paused: 0 });
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: the task list filters by queue, state and name, in pages", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const failed = await get(d, "/api/tasks?state=failed");
    assert.deepEqual(failed.body.tasks.map((t: { id: string }) => t.id), [f.ids.failed]);
    const other = await get(d, "/api/tasks?queue=other");
    assert.equal(other.body.tasks.length, 1);
    const named = await get(d, "/api/tasks?task=dash-ok&state=queued,scheduled");
    assert.deepEqual(
      named.body.tasks.map((t: { id: string }) => t.id).sort(),
      [f.ids.queued, f.ids.scheduled].sort(),
    );
    const all = await get(d, "/api/tasks?limit=500");
    const last = all.body.tasks.at(-1);
    const since = new Date(Date.parse(last.createdAt)).toISOString();
    const recent = await get(d, `/api/tasks?since=${since}`);
    assert.ok(recent.body.tasks.every((t: { createdAt: string }) => t.createdAt >= since));
    assert.ok(recent.body.tasks.some((t: { id: string }) => t.id === last.id));
    const before = await get(d, `/api/tasks?until=${Date.parse(last.createdAt)}`);
    assert.ok(!before.body.tasks.some((t: { id: string }) => t.id === last.id));
    assert.equal(recent.body.tasks.length + before.body.tasks.length, all.body.tasks.length);
    const first = await get(d, "/api/tasks?limit=2");
    const second = await get(d, "/api/tasks?limit=2&offset=2");
    assert.equal(first.body.tasks.length, 2);
    assert.equal(second.body.tasks.length, 2);
    assert.notDeepEqual(first.body.tasks[0].id, second.body.tasks[0].id);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: bad filters and unknown ids get clear errors, not a crash", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const cases: [string, number, RegExp][] = [
      ["/api/tasks?state=finished", 400, /state: "finished" is not one of/],
      ["/api/tasks?colour=red", 400, /unknown filter "colour"/],
      ["/api/tasks?limit=0", 400, /limit: expected a whole number from 1 to 500/],
      ["/api/tasks?limit=abc", 400, /limit/],
      ["/api/tasks?offset=-1", 400, /offset/],
      ["/api/tasks?since=yesterday", 400, /since: expected epoch ms or an ISO 8601 time/],
      ["/api/tasks/no-such-task", 404, /no task with id "no-such-task"/],
      ["/api/tasks/no-such-task/result", 404, /no result/],
      ["/api/nothing", 404, /no such API/],
      ["/elsewhere", 404, /no such page/],
      ["/api/tasks/%E0%A4%A", 400, /a malformed path segment/],
    ];
    for (const [path, status, error] of cases) {
      const out = await get(d, path);
      assert.equal(out.status, status, path);
      assert.match(out.body.error, error, path);
    }
    const put = await get(d, "/api/overview", { method: "PUT" });
    assert.equal(put.status, 405);
    // Still serving.
    assert.equal((await get(d, "/api/overview")).status, 200);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: a task's page has its arguments, error with stack, and timeline", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const failed = await get(d, `/api/tasks/${f.ids.failed}`);
    assert.equal(failed.status, 200);
    assert.equal(failed.body.task.state, "failed");
    assert.equal(failed.body.result.error.name, "TypeError");
    assert.equal(failed.body.result.error.message, "it broke <b>here</b>");
    assert.match(failed.body.result.error.stack, /dashboard_test\.ts/);
    assert.deepEqual(
      failed.body.events.map((e: { type: string }) => e.type),
      ["enqueued", "started", "failed"],
    );
    const script = await get(d, `/api/tasks/${f.ids.script}`);
    assert.deepEqual(script.body.task.args, ["<script>alert(1)</script>"]);
    assert.equal(script.body.result.value, "<script>alert(1)</script>");
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: store text never becomes markup: the page inlines none, the script uses text nodes", async () => {
  const f = await fixture();
  try {
    const page = await get(f.dashboard, "/");
    assert.equal(page.status, 200);
    assert.ok(!(page.body as string).includes("alert(1)"));
    assert.match(page.headers.get("content-security-policy")!, /script-src 'self'/);
    assert.doesNotMatch(
      page.headers.get("content-security-policy")!,
      /unsafe-inline'; style-src 'unsafe-inline'; connect/,
    );
    assert.doesNotMatch(APP_JS, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
    const script = await get(f.dashboard, "/app.js");
    assert.equal(script.status, 200);
    assert.equal(script.body, APP_JS);
    assert.equal(script.headers.get("x-content-type-options"), "nosniff");
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: a huge result is cut, with a link to the whole of it", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const { body } = await get(d, `/api/tasks/${f.ids.big}`);
    assert.equal(body.result.value, undefined);
    assert.equal(body.result.preview.length, 16_384);
    assert.equal(body.result.truncated, 100_002);
    const whole = await get(d, body.result.download);
    assert.equal(whole.status, 200);
    assert.equal(whole.body.value.length, 100_000);
    assert.match(whole.headers.get("content-disposition")!, /attachment/);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: retry and cancel need POST with the page's CSRF secret", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const csrf = await csrfOf(d);
    const retry = `/api/tasks/${f.ids.failed}/retry`;
    assert.equal((await get(d, retry, { method: "POST" })).status, 403, "no CSRF header");
    const wrong = await get(d, retry, { method: "POST", headers: { "x-omniq-csrf": "nope" } });
    assert.equal(wrong.status, 403);
    assert.equal((await get(d, retry)).status, 404, "GET does not act");
    assert.equal((await f.q.get(f.ids.failed))!.state, "failed", "nothing changed");
    const done = await get(d, retry, { method: "POST", headers: { "x-omniq-csrf": csrf } });
    assert.deepEqual(done.body, { ok: true });
    assert.equal((await f.q.get(f.ids.failed))!.state, "queued");
    const cancel = await get(d, `/api/tasks/${f.ids.queued}/cancel`, {
      method: "POST",
      headers: { "x-omniq-csrf": csrf },
    });
    assert.deepEqual(cancel.body, { ok: true });
    assert.equal((await f.q.get(f.ids.queued))!.state, "cancelled");
    const unknown = await get(d, "/api/tasks/nope/retry", {
      method: "POST",
      headers: { "x-omniq-csrf": csrf },
    });
    assert.equal(unknown.status, 404);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: a queue paused and resumed from the overview's actions", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const csrf = await csrfOf(d);
    const post = (path: string) =>
      get(d, path, { method: "POST", headers: { "x-omniq-csrf": csrf } });
    assert.deepEqual((await get(d, "/api/overview")).body.stats.paused, []);
    assert.deepEqual((await post("/api/queues/emails/pause")).body, { ok: true });
    assert.deepEqual((await post("/api/queues/emails/pause")).body, { ok: false });
    assert.deepEqual((await f.q.stats()).paused, ["emails"]);
    assert.deepEqual((await get(d, "/api/overview")).body.stats.paused, ["emails"]);
    // Without the CSRF header, nothing changes.
    const forged = await get(d, "/api/queues/emails/resume", { method: "POST" });
    assert.equal(forged.status, 403);
    assert.deepEqual((await f.q.stats()).paused, ["emails"]);
    assert.deepEqual((await post("/api/queues/emails/resume")).body, { ok: true });
    assert.deepEqual((await f.q.stats()).paused, []);
    assert.equal((await post("/api/queues/emails/explode")).status, 404);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: schedules list, pause, resume and remove", async () => {
  const f = await fixture();
  try {
    const d = f.dashboard;
    const csrf = await csrfOf(d);
    const post = (path: string) =>
      get(d, path, { method: "POST", headers: { "x-omniq-csrf": csrf } });
    const list = await get(d, "/api/schedules");
    assert.equal(list.body[0].id, "every-hour");
    assert.equal(list.body[0].paused, false);
    assert.ok(list.body[0].nextRunAt);
    assert.deepEqual((await post("/api/schedules/every-hour/pause")).body, { ok: true });
    assert.equal((await f.q.schedules())[0].paused, true);
    assert.equal((await get(d, "/api/overview")).body.schedules.paused, 1);
    assert.deepEqual((await post("/api/schedules/every-hour/resume")).body, { ok: true });
    assert.equal((await f.q.schedules())[0].paused, false);
    assert.deepEqual((await post("/api/schedules/every-hour/remove")).body, { ok: true });
    assert.deepEqual(await f.q.schedules(), []);
    assert.equal((await post("/api/schedules/every-hour/explode")).status, 404);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: read-only refuses every action", async () => {
  const f = await fixture({ readOnly: true });
  try {
    const d = f.dashboard;
    const csrf = await csrfOf(d);
    assert.match((await get(d, "/")).body as string, /omniq-read-only" content="1"/);
    const out = await get(d, `/api/tasks/${f.ids.failed}/retry`, {
      method: "POST",
      headers: { "x-omniq-csrf": csrf },
    });
    assert.equal(out.status, 403);
    assert.match(out.body.error, /read-only/);
    assert.equal((await f.q.get(f.ids.failed))!.state, "failed");
    assert.equal((await get(d, "/api/overview")).status, 200, "reading still works");
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: with a token, every request needs it (bearer, or the page's cookie)", async () => {
  const f = await fixture({ token: TOKEN });
  try {
    const d = f.dashboard;
    for (const path of ["/", "/app.js", "/api/overview", "/metrics", "/api/stream"]) {
      const out = await get(d, path);
      assert.equal(out.status, 401, path);
    }
    const wrong = await get(d, "/api/overview", { headers: { authorization: "Bearer nope" } });
    assert.equal(wrong.status, 401);
    const bearer = await get(d, "/api/overview", { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(bearer.status, 200);
    // The first visit carries it in the address; the answer keeps it in a cookie.
    const first = await fetch(new URL(`/?token=${TOKEN}`, d.url), { redirect: "manual" });
    await first.body?.cancel();
    assert.equal(first.status, 303);
    assert.equal(first.headers.get("location"), "/");
    const cookie = first.headers.get("set-cookie")!;
    assert.match(cookie, /HttpOnly; SameSite=Strict/);
    const withCookie = { headers: { cookie: cookie.split(";")[0] } };
    assert.equal((await get(d, "/api/overview", withCookie)).status, 200);
    const csrf = await csrfOf(d, withCookie);
    const action = await get(d, `/api/tasks/${f.ids.failed}/retry`, {
      method: "POST",
      headers: { ...withCookie.headers, "x-omniq-csrf": csrf },
    });
    assert.deepEqual(action.body, { ok: true });
    const badFirst = await fetch(new URL("/?token=wrong", d.url), { redirect: "manual" });
    await badFirst.body?.cancel();
    assert.equal(badFirst.status, 401);
  } finally {
    await f.cleanup();
  }
});

/** A GET with a `Host` header of one's choosing (fetch sets its own), over a raw socket. */
async function getWithHost(port: number, path: string, host: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text;
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}

Deno.test("dashboard: on loopback it answers loopback host names only (DNS rebinding)", async () => {
  const f = await fixture();
  try {
    const port = f.dashboard.port;
    const evil = await getWithHost(port, "/api/overview", "evil.example");
    assert.match(evil, /^HTTP\/1\.1 403/);
    assert.match(evil, /host \\"evil.example\\" is not this dashboard's/);
    assert.match(await getWithHost(port, "/api/overview", `localhost:${port}`), /^HTTP\/1\.1 200/);
    assert.match(await getWithHost(port, "/api/overview", `127.0.0.1:${port}`), /^HTTP\/1\.1 200/);
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: bad options are refused before anything is bound", async () => {
  const q = await OmniQ.open("memory:");
  try {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ hostname: "0.0.0.0" }, /not loopback, needs a token/],
      [{ port: 70_000 }, /port: expected a whole number from 0 to 65535/],
      [{ port: 1.5 }, /port/],
      [{ hostname: "" }, /hostname: expected an address/],
      [{ token: "short" }, /at least 16 characters/],
      [{ readOnly: "yes" }, /readOnly: expected true or false/],
      [{ colour: "red" }, /dashboard\.colour: unknown option/],
    ];
    for (const [options, message] of bad) {
      await assert.rejects(
        () => serveDashboard(q, options as never),
        (e: unknown) => e instanceof ConfigError && message.test(e.message),
        JSON.stringify(options),
      );
    }
    // A non-loopback address passes the checks with a token (binding it may then be refused
    // by the test's network permission, which is not a configuration error).
    try {
      const d = await serveDashboard(q, { hostname: "0.0.0.0", port: 0, token: TOKEN });
      await d.close();
    } catch (error) {
      assert.ok(!(error instanceof ConfigError), String(error));
    }
  } finally {
    await q.close();
  }
});

Deno.test("dashboard: /metrics gives the counts by state, the counters, durations and lag", async () => {
  const dir = await Deno.makeTempDir();
  const q = await OmniQ.open(`sqlite:${dir}/q.db`);
  const d = await serveDashboard(q, { port: 0 });
  try {
    for (let i = 0; i < 5; i++) await q.enqueue("dash-ok", [i]);
    await q.enqueue("dash-fail", []);
    await q.run({ until: "idle" });
    await q.enqueue("dash-ok", [9], { runAt: new Date(Date.now() - 60_000) });
    const out = await get(d, "/metrics");
    assert.equal(out.status, 200);
    assert.match(out.headers.get("content-type")!, /text\/plain; version=0\.0\.4/);
    const text = out.body as string;
    assert.match(text, /^omniq_tasks\{queue="default",state="completed"\} 5$/m);
    assert.match(text, /^omniq_tasks\{queue="default",state="failed"\} 1$/m);
    assert.match(text, /^omniq_tasks\{queue="default",state="queued"\} 1$/m);
    assert.match(text, /^omniq_tasks_completed_total\{queue="default"\} 5$/m);
    assert.match(text, /^omniq_tasks_failed_total\{queue="default"\} 1$/m);
    assert.match(text, /^omniq_task_duration_seconds_count\{queue="default"\} 6$/m);
    assert.match(text, /^omniq_task_duration_seconds_bucket\{queue="default",le="\+Inf"\} 6$/m);
    const lag = Number(/^omniq_queue_lag_seconds\{queue="default"\} (\S+)$/m.exec(text)![1]);
    assert.ok(lag >= 59 && lag < 120, `lag ${lag}`);
    const throughput = (await get(d, "/api/overview")).body.throughput;
    const counted = throughput.reduce((a: number, p: { completed: number }) => a + p.completed, 0);
    assert.equal(counted, 5);
  } finally {
    await d.close();
    await q.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("dashboard: the event stream sends each new event", async () => {
  const f = await fixture();
  try {
    const response = await fetch(new URL("/api/stream", f.dashboard.url));
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    const id = await f.q.enqueue("dash-ok", [5]);
    let seen = "";
    const deadline = Date.now() + 10_000;
    while (!seen.includes(id)) {
      assert.ok(Date.now() < deadline, "the event came within 10 s");
      const { value, done } = await reader.read();
      assert.ok(!done);
      seen += value;
    }
    const line = seen.split("\n").find((l) => l.startsWith("data: ") && l.includes(id))!;
    const event = JSON.parse(line.slice(6));
    assert.equal(event.type, "enqueued");
    assert.equal(event.taskId, id);
    await reader.cancel();
  } finally {
    await f.cleanup();
  }
});

Deno.test("dashboard: a store that is down is reported, and the server keeps serving", async () => {
  const q = await OmniQ.open("memory:");
  const d = await serveDashboard(q, { port: 0 });
  try {
    await q.close();
    const out = await get(d, "/api/overview");
    assert.equal(out.status, 503);
    assert.match(out.body.error, /the store did not answer/);
    assert.equal((await get(d, "/")).status, 200);
    assert.equal((await get(d, "/api/tasks")).status, 503);
  } finally {
    await d.close();
  }
});

Deno.test("dashboard: the handler mounts in a server of one's own", async () => {
  const q = await OmniQ.open("memory:");
  const handler = dashboardHandler(q, { token: TOKEN });
  try {
    await q.enqueue("dash-ok", [1]);
    const request = (path: string) =>
      new Request(new URL(path, "http://anywhere.example/"), {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
    const response = await handler.handle(request("/api/overview"));
    assert.equal(response.status, 200);
    assert.equal((await response.json()).stats.total.queued, 1);
    const refused = await handler.handle(new Request("http://anywhere.example/api/overview"));
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
  } finally {
    handler.close();
    await q.close();
  }
});

Deno.test("dashboard: the overview lists the workers running tasks, and keeps them a while", async () => {
  let release = () => {};
  const held = new Promise<void>((resolve) => release = resolve);
  defineTask("dash-hold", () => held);
  const q = await OmniQ.open("memory:");
  const w = q.worker({ queues: ["hold"], concurrency: 2, pollInterval: "10ms" });
  const d = await serveDashboard(q, { port: 0 });
  try {
    assert.deepEqual((await get(d, "/api/overview")).body.workers, []);
    await q.enqueue("dash-hold", [], { queue: "hold" });
    await q.enqueue("dash-hold", [], { queue: "hold" });
    await w.start();
    const deadline = Date.now() + 10_000;
    while ((await q.stats()).total.running < 2) {
      assert.ok(Date.now() < deadline, "both tasks run within 10 s");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const [running] = (await get(d, "/api/overview")).body.workers;
    assert.equal(running.id, w.id);
    assert.equal(running.running, 2);
    assert.equal((await q.list({ state: "running" }))[0].worker, w.id);
    release();
    while ((await q.stats()).total.running > 0) {
      assert.ok(Date.now() < deadline, "both tasks end within 10 s");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    // Idle now, still listed as seen lately.
    const [idle] = (await get(d, "/api/overview")).body.workers;
    assert.deepEqual([idle.id, idle.running], [w.id, 0]);
  } finally {
    release();
    await w.stop();
    await d.close();
    await q.close();
  }
});
