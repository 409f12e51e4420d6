/**
 * The dashboard's page and script, shipped as strings (no build step, nothing to fetch from
 * elsewhere). The script builds every element with `textContent`, never with HTML from the
 * store, so arguments, results and errors always show as text.
 *
 * @module
 */

/**
 * The page.
 *
 * @param csrf The secret the page's actions send in `X-OmniQ-CSRF`.
 * @param readOnly Whether to leave the action buttons out.
 * @returns The HTML document.
 */
export function page(csrf: string, readOnly: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="omniq-csrf" content="${csrf.replace(/[^A-Za-z0-9_-]/g, "")}">
<meta name="omniq-read-only" content="${readOnly ? "1" : "0"}">
<title>OmniQ</title>
<style>${STYLE}</style>
</head>
<body>
<header><strong>OmniQ</strong>
<nav><a href="#/">Overview</a> <a href="#/tasks">Tasks</a> <a href="#/schedules">Schedules</a></nav>
<span id="status" role="status"></span></header>
<main id="main"></main>
<script src="/app.js"></script>
</body>
</html>
`;
}

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 0; color: #222; }
header { display: flex; gap: 2em; align-items: center; padding: .6em 1em; background: #1f2937; color: #fff; }
header a { color: #cbd5e1; margin-right: 1em; }
#status { margin-left: auto; font-size: 12px; }
#status.down { color: #fca5a5; }
main { padding: 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
th, td { border-bottom: 1px solid #e5e7eb; padding: .3em .7em; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f3f4f6; padding: .6em; overflow: auto; max-height: 30em; white-space: pre-wrap; }
button { margin-right: .5em; }
form label { margin-right: 1em; }
.state-failed { color: #b91c1c; } .state-completed { color: #047857; } .state-running { color: #1d4ed8; }
canvas { border: 1px solid #e5e7eb; }
`;

/** The page's script. */
export const APP_JS = `"use strict";
const csrf = document.querySelector('meta[name="omniq-csrf"]').content;
const readOnly = document.querySelector('meta[name="omniq-read-only"]').content === "1";
const main = document.getElementById("main");
const status = document.getElementById("status");
const STATES = ["waiting", "scheduled", "queued", "running", "completed", "failed", "cancelled", "expired"];

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function render(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((n) => n !== undefined && n !== null && n !== ""));
}

function show(text, down) {
  status.textContent = text;
  status.className = down ? "down" : "";
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  show("connected", false);
  return body;
}

async function act(path, what) {
  if (!confirm(what + "?")) return;
  try {
    const out = await api(path, { method: "POST", headers: { "x-omniq-csrf": csrf } });
    show(out.ok ? what + ": done" : what + ": nothing to do", false);
  } catch (e) {
    show(what + " failed: " + e.message, true);
  }
  route();
}

// A stack names the error itself on its first line; without one, name and message.
const errorText = (e) => {
  const head = e.name + ": " + e.message;
  return e.stack ? (e.stack.startsWith(head) ? e.stack : head + "\\n" + e.stack) : head;
};
const when = (v) => v ? new Date(v).toLocaleString() : "";
const text = (v) => v === undefined ? "" : JSON.stringify(v, null, 2);

function chart(points) {
  const canvas = el("canvas", { width: 600, height: 120, "aria-label": "throughput" });
  const g = canvas.getContext("2d");
  const now = Math.floor(Date.now() / 1000) * 1000;
  const span = 300;
  const by = new Map(points.map((p) => [p.at, p]));
  let max = 1;
  for (const p of points) max = Math.max(max, p.completed + p.failed);
  const w = canvas.width / span;
  for (let i = 0; i < span; i++) {
    const p = by.get(now - (span - 1 - i) * 1000);
    if (!p) continue;
    const hc = (p.completed / max) * (canvas.height - 10);
    const hf = (p.failed / max) * (canvas.height - 10);
    g.fillStyle = "#10b981";
    g.fillRect(i * w, canvas.height - hc, Math.max(w, 1), hc);
    g.fillStyle = "#ef4444";
    g.fillRect(i * w, canvas.height - hc - hf, Math.max(w, 1), hf);
  }
  return el("figure", {}, canvas, el("figcaption", {}, "completed (green) and failed (red) per second, last 5 minutes; peak " + max + "/s"));
}

async function overview() {
  const o = await api("/api/overview");
  const paused = o.stats.paused;
  const queues = [...new Set([...Object.keys(o.stats.queues), ...paused])].sort();
  const head = el("tr", {}, el("th", {}, "queue"), STATES.map((s) => el("th", {}, s)), el("th", {}, ""));
  const control = (q) => {
    const on = paused.includes(q);
    const path = "/api/queues/" + encodeURIComponent(q) + (on ? "/resume" : "/pause");
    return el("td", { class: "paused" }, on ? "paused " : "",
      readOnly ? "" : el("button", { class: on ? "resume" : "pause", onclick: () => act(path, (on ? "Resume" : "Pause") + " queue " + q) }, on ? "Resume" : "Pause"));
  };
  const rows = queues.map((q) =>
    el("tr", { "data-queue": q }, el("td", {}, el("a", { href: "#/tasks?queue=" + encodeURIComponent(q) }, q)),
      STATES.map((s) => el("td", { class: "n", "data-state": s }, (o.stats.queues[q] || {})[s] || 0)), control(q)));
  const total = el("tr", { "data-queue": "" }, el("th", {}, "total"),
    STATES.map((s) => el("td", { class: "n", "data-state": s }, o.stats.total[s] || 0)), el("td", {}, ""));
  const last = o.throughput.slice(-10);
  const rate = last.reduce((a, p) => a + p.completed, 0) / Math.max(1, last.length);
  render(el("h1", {}, "Overview"),
    el("table", { id: "counts" }, head, rows, total),
    el("p", {}, "Schedules: " + o.schedules.total + " (" + o.schedules.paused + " paused). Completed lately: about " + rate.toFixed(1) + "/s."),
    chart(o.throughput),
    el("h2", {}, "Workers seen in the last 5 minutes"),
    o.workers.length === 0 ? el("p", {}, "None has run a task lately.")
      : el("table", { id: "workers" }, el("tr", {}, el("th", {}, "worker"), el("th", {}, "running now"), el("th", {}, "last seen")),
        o.workers.map((w) => el("tr", { "data-worker": w.id }, el("td", {}, w.id), el("td", { class: "n" }, w.running), el("td", {}, when(w.lastSeen))))));
}

async function tasks(params) {
  const query = new URLSearchParams(params);
  if (!query.get("limit")) query.set("limit", "50");
  const out = await api("/api/tasks?" + query);
  const field = (name) => el("label", {}, name + " ", el("input", { name, value: query.get(name) || "" }));
  // A local date and time in the form; the API gets it as ISO 8601 (UTC).
  const local = (iso) => { if (!iso) return ""; const d = new Date(iso); return isNaN(d) ? "" : new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16); };
  const timeField = (name, label) => el("label", {}, label + " ", el("input", { name, type: "datetime-local", value: local(query.get(name)) }));
  const stateSel = el("select", { name: "state" }, el("option", { value: "" }, "any state"),
    STATES.map((s) => { const o = el("option", { value: s }, s); if (query.get("state") === s) o.selected = true; return o; }));
  const form = el("form", { onsubmit: (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, k === "since" || k === "until" ? new Date(v).toISOString() : v);
    location.hash = "#/tasks?" + q;
  } }, field("queue"), field("task"), el("label", {}, "state ", stateSel),
    timeField("since", "enqueued from"), timeField("until", "to"), el("button", { type: "submit" }, "Filter"));
  const offset = Number(query.get("offset") || 0), limit = Number(query.get("limit"));
  const pageTo = (o) => { const q = new URLSearchParams(query); q.set("offset", String(Math.max(0, o))); return "#/tasks?" + q; };
  render(el("h1", {}, "Tasks"), form,
    el("table", { id: "tasks" }, el("tr", {}, ["id", "task", "queue", "state", "attempts", "created"].map((h) => el("th", {}, h))),
      out.tasks.map((t) => el("tr", { "data-id": t.id },
        el("td", {}, el("a", { href: "#/task/" + encodeURIComponent(t.id) }, t.id)),
        el("td", {}, t.task), el("td", {}, t.queue), el("td", { class: "state-" + t.state }, t.state),
        el("td", { class: "n" }, t.attempts + "/" + t.maxAttempts), el("td", {}, when(t.createdAt))))),
    el("p", {}, offset > 0 ? el("a", { href: pageTo(offset - limit) }, "← newer page ") : "",
      out.tasks.length === limit ? el("a", { href: pageTo(offset + limit) }, " older page →") : ""));
}

async function task(id) {
  const out = await api("/api/tasks/" + encodeURIComponent(id));
  const t = out.task;
  const actions = readOnly ? [] : [
    el("button", { id: "retry", onclick: () => act("/api/tasks/" + encodeURIComponent(id) + "/retry", "Retry " + id) }, "Retry"),
    el("button", { id: "cancel", onclick: () => act("/api/tasks/" + encodeURIComponent(id) + "/cancel", "Cancel " + id) }, "Cancel"),
  ];
  const facts = [["state", t.state], ["task", t.task], ["queue", t.queue], ["priority", t.priority],
    ["attempts", t.attempts + " of " + t.maxAttempts], ["created", when(t.createdAt)], ["due", when(t.runAt)],
    ["started", when(t.startedAt)], ["ended", when(t.completedAt)], ["depends on", (t.dependsOn || []).join(", ")],
    ["key", t.key || ""], ["schedule", t.scheduleId || ""]];
  if (t.keyUntil) facts.push(["key held until", when(t.keyUntil)]);
  if (t.group) facts.push(["group", t.group + " (" + t.groupConcurrency + " at once)"]);
  if (t.deadLetter) facts.push(["dead letters to", t.deadLetter]);
  if (t.ageAfter) facts.push(["ages after", t.ageAfter + " ms"]);
  const r = out.result;
  const result = !r ? el("p", {}, "No result yet.") : [
    el("p", {}, "Ended " + r.state + " at " + when(r.completedAt)),
    r.error ? el("pre", { id: "error" }, errorText(r.error)) : "",
    r.truncated ? [el("pre", { id: "value" }, r.preview + " …"), el("a", { href: r.download, download: "" }, "whole result (" + r.truncated + " bytes)")]
      : (r.value !== undefined ? el("pre", { id: "value" }, text(r.value)) : ""),
  ];
  render(el("h1", {}, "Task ", el("code", {}, t.id)), el("p", {}, actions),
    el("table", { id: "facts" }, facts.map(([k, v]) => el("tr", {}, el("th", {}, k), el("td", { "data-fact": k }, v)))),
    el("h2", {}, "Arguments"), el("pre", { id: "args" }, text(t.args)),
    t.error && !r ? [el("h2", {}, "Last error"), el("pre", {}, errorText(t.error))] : "",
    el("h2", {}, "Result"), result,
    el("h2", {}, "Timeline"),
    el("table", { id: "timeline" }, out.events.map((e) => el("tr", {}, el("td", {}, when(e.at)), el("td", {}, e.type),
      el("td", {}, e.attempt === undefined ? "" : "attempt " + e.attempt), el("td", {}, e.data ? JSON.stringify(e.data) : "")))));
}

async function schedules() {
  const list = await api("/api/schedules");
  render(el("h1", {}, "Schedules"),
    el("table", { id: "schedules" }, el("tr", {}, ["id", "task", "when", "queue", "next run", "state", ""].map((h) => el("th", {}, h))),
      list.map((s) => el("tr", { "data-id": s.id }, el("td", {}, s.id), el("td", {}, s.task),
        el("td", {}, s.cron ? "cron " + s.cron + (s.tz ? " " + s.tz : "") : "every " + s.every + " ms"), el("td", {}, s.queue),
        el("td", {}, s.paused ? "" : when(s.nextRunAt)), el("td", { class: "paused" }, s.paused ? "paused" : "active"),
        el("td", {}, readOnly ? "" : [
          s.paused ? el("button", { class: "resume", onclick: () => act("/api/schedules/" + encodeURIComponent(s.id) + "/resume", "Resume " + s.id) }, "Resume")
            : el("button", { class: "pause", onclick: () => act("/api/schedules/" + encodeURIComponent(s.id) + "/pause", "Pause " + s.id) }, "Pause"),
          el("button", { class: "remove", onclick: () => act("/api/schedules/" + encodeURIComponent(s.id) + "/remove", "Remove " + s.id) }, "Remove"),
        ])))));
}

async function route() {
  const hash = location.hash.slice(1) || "/";
  const [path, query] = hash.split("?");
  try {
    if (path === "/tasks") await tasks(query || "");
    else if (path.startsWith("/task/")) await task(decodeURIComponent(path.slice(6)));
    else if (path === "/schedules") await schedules();
    else await overview();
  } catch (e) {
    show("the dashboard could not load this: " + e.message, true);
  }
}

// Live: every event refreshes the view (at most twice a second); a lost stream says so and
// reconnects by itself.
let pending = false;
const source = new EventSource("/api/stream");
source.onmessage = () => {
  const typing = document.activeElement && /^(INPUT|SELECT)$/.test(document.activeElement.tagName);
  if (pending || typing) return;
  pending = true;
  setTimeout(() => { pending = false; route(); }, 500);
};
source.onerror = () => show("live updates lost; retrying", true);
source.onopen = () => show("connected", false);
addEventListener("hashchange", route);
route();
`;
