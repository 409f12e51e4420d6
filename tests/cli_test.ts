// The command line, run as a subprocess (`deno run -A cli.ts …`) against a temp SQLite file:
// usage and bad arguments, every inspection command, and a worker stopped by a signal
// mid-run that loses nothing.
import assert from "node:assert/strict";
import { type EventRecord, OmniQ } from "../mod.ts";
import { findBinary } from "./servers.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;
const FIXTURE = new URL("./fixtures/pool_tasks.ts", import.meta.url);

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

// The CLI reads OMNIQ_* variables as its configuration and refuses unknown ones, so the
// test runner's own (OMNIQ_TEST_*, the servers' URLs) are not passed on to it.
const CHILD_ENV = Object.fromEntries(
  Object.entries(Deno.env.toObject()).filter(([name]) => !name.startsWith("OMNIQ_")),
);

function command(args: string[], cwd: string): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--config=${CONFIG}`, "-A", CLI, ...args],
    cwd,
    clearEnv: true,
    env: CHILD_ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

async function cli(args: string[], cwd: string): Promise<Output> {
  const out = await command(args, cwd).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

/** A temp dir with a SQLite path in it, removed afterwards. */
async function withDir(fn: (dir: string, store: string[]) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-cli-" });
  try {
    await fn(dir, ["--backend", `sqlite:${dir}/queue.db`, "--tasks", FIXTURE.pathname]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function openQueue(dir: string): Promise<OmniQ> {
  return OmniQ.open({ backend: `sqlite:${dir}/queue.db`, tasks: [FIXTURE] });
}

async function allEvents(q: OmniQ): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const e of q.events()) out.push(e);
  return out;
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const COMMANDS = [
  "worker",
  "enqueue",
  "status",
  "list",
  "result",
  "retry",
  "cancel",
  "events",
  "schedules",
  "queues",
];

Deno.test("cli: --help prints the usage of the program and of each command, exit 0", async () => {
  await withDir(async (dir) => {
    const outs = await Promise.all([
      cli(["--help"], dir),
      ...COMMANDS.map((c) => cli([c, "--help"], dir)),
    ]);
    const [main, ...each] = outs;
    assert.equal(main.code, 0, main.stderr);
    assert.match(main.stdout, /Usage: omniq <command>/);
    for (const c of COMMANDS) assert.match(main.stdout, new RegExp(`^  ${c}`, "m"));
    for (const [i, out] of each.entries()) {
      assert.equal(out.code, 0, `${COMMANDS[i]} --help: ${out.stderr}`);
      assert.match(out.stdout, new RegExp(`Usage: omniq ${COMMANDS[i]}`));
    }
    // No command at all: the usage, as an error.
    const none = await cli([], dir);
    assert.equal(none.code, 2);
    assert.match(none.stdout + none.stderr, /Usage: omniq <command>/);
    // --help opened no store.
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("cli: bad arguments exit 2 with a clear message", async () => {
  await withDir(async (dir, store) => {
    const cases: [string[], RegExp][] = [
      [["frobnicate"], /unknown command "frobnicate"/],
      [["status", "--bogus"], /unknown option --bogus/],
      [["list", "--nope", "x"], /list: unknown option --nope/],
      [["enqueue", "pool-add", "[1,", ...store], /ARGS_JSON: expected a JSON array/],
      [["enqueue", "pool-add", '{"a":1}', ...store], /args: expected an array/],
      [["enqueue", "pool-add", ...store], /enqueue needs TASK and ARGS_JSON/],
      [["result", ...store], /result needs ID/],
      [["result", "a", "b", ...store], /unexpected argument "b"/],
      [["worker", "--concurrency", "many", ...store], /--concurrency: expected a whole number/],
      [["worker", "--type", "fiber", ...store], /worker\.type: expected "async", "thread"/],
      [["list", "--state", "done", ...store], /--state: expected one of/],
      [["events", "--type", "finished", ...store], /--type: expected one of/],
      [["schedules", "frob", ...store], /schedules: unknown action "frob"/],
      [["queues", "stop", "x", ...store], /queues: unknown action "stop"/],
      [["queues", "pause", ...store], /queues pause needs Q/],
      [["status", "--backend"], /--backend needs a value/],
    ];
    const outs = await Promise.all(cases.map(([args]) => cli(args, dir)));
    for (const [i, out] of outs.entries()) {
      const [args, message] = cases[i];
      assert.equal(out.code, 2, `${args.join(" ")}: exit ${out.code}\n${out.stderr}`);
      assert.match(out.stderr, message, `${args.join(" ")}`);
      assert.match(out.stderr, /^omniq: /);
    }
  });
});

Deno.test("cli: enqueue, status, list, result, events, cancel, retry, schedules", async () => {
  await withDir(async (dir, store) => {
    const enq = await cli(["enqueue", "pool-add", "[1, 2]", "--queue", "high", ...store], dir);
    assert.equal(enq.code, 0, enq.stderr);
    const id = enq.stdout.trim();
    assert.match(id, /^\S+$/);
    const other = (await cli(["enqueue", "pool-add", "[5, 5]", ...store], dir)).stdout.trim();

    const status = await cli(["status", ...store], dir);
    assert.equal(status.code, 0, status.stderr);
    const rows = status.stdout.trim().split("\n").map((r) => r.trim().split(/\s+/));
    const header = rows[0];
    const row = (name: string) => rows.find((r) => r[0] === name)!;
    assert.equal(row("high")[header.indexOf("queued")], "1");
    assert.equal(row("default")[header.indexOf("queued")], "1");
    assert.equal(row("total")[header.indexOf("queued")], "2");

    const listed = await cli(["list", "--state", "queued", "--queue", "high", ...store], dir);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.stdout.trim().split("\n").length, 1);
    assert.match(listed.stdout, new RegExp(`^${id}\\s+pool-add\\s+high\\s+queued`));
    assert.equal((await cli(["list", "--state", "completed", ...store], dir)).stdout, "");

    // No result before it ran: exit 1.
    const early = await cli(["result", id, ...store], dir);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /no result/);

    // Cancel the other while queued; a second cancel changes nothing; retry queues it again.
    const cancel = await cli(["cancel", other, ...store], dir);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.match(cancel.stdout, /cancelled/);
    assert.equal((await cli(["cancel", other, ...store], dir)).code, 1);
    const retry = await cli(["retry", other, ...store], dir);
    assert.equal(retry.code, 0, retry.stderr);
    assert.match(retry.stdout, /queued again/);

    {
      await using q = await openQueue(dir);
      await q.run({ until: "idle", queues: ["high", "default"] });
      assert.equal(await q.wait(other), 10);
      await q.schedule("pool-add", [1, 1], { every: "1h", id: "hourly" });
    }

    const result = await cli(["result", id, ...store], dir);
    assert.equal(result.code, 0, result.stderr);
    const record = JSON.parse(result.stdout);
    assert.equal(record.state, "completed");
    assert.equal(record.value, 3);

    const events = await cli(["events", "--task", id, ...store], dir);
    assert.equal(events.code, 0, events.stderr);
    const types = events.stdout.trim().split("\n").map((l) => l.split(/\s+/)[1]);
    assert.deepEqual(types, ["enqueued", "started", "completed"]);
    const completed = await cli(["events", "--type", "completed", ...store], dir);
    assert.equal(completed.stdout.trim().split("\n").length, 2);

    const schedules = await cli(["schedules", ...store], dir);
    assert.equal(schedules.code, 0, schedules.stderr);
    assert.match(schedules.stdout, /^hourly\s+pool-add\s+every 3600000ms\s+active/m);
    const pause = await cli(["schedules", "pause", "hourly", ...store], dir);
    assert.equal(pause.code, 0, pause.stderr);
    assert.match((await cli(["schedules", ...store], dir)).stdout, /^hourly.*paused/m);
    assert.equal((await cli(["schedules", "pause", "hourly", ...store], dir)).code, 1);
    assert.equal((await cli(["schedules", "resume", "hourly", ...store], dir)).code, 0);
    assert.match((await cli(["schedules", ...store], dir)).stdout, /^hourly.*active/m);
    assert.equal((await cli(["schedules", "resume", "no-such", ...store], dir)).code, 1);
  });
});

Deno.test("cli: queues pause, list and resume a queue; enqueue --dead-letter", async () => {
  await withDir(async (dir, store) => {
    const enq = await cli(
      [
        "enqueue",
        "pool-add",
        "[2, 2]",
        ...["--queue", "bulk", "--dead-letter", "dead", "--age-after", "1h"],
        ...["--key", "k", "--throttle", "1h", "--group", "acme", "--group-concurrency", "3"],
        ...store,
      ],
      dir,
    );
    assert.equal(enq.code, 0, enq.stderr);
    const id = enq.stdout.trim();
    const dup = await cli(["enqueue", "pool-add", "[9, 9]", "--key", "k", ...store], dir);
    assert.equal(dup.stdout.trim(), id, "a duplicate within the throttle window gets its id");
    const pause = await cli(["queues", "pause", "bulk", ...store], dir);
    assert.equal(pause.code, 0, pause.stderr);
    assert.match(pause.stdout, /paused: bulk/);
    assert.equal((await cli(["queues", "pause", "bulk", ...store], dir)).code, 1);
    assert.equal((await cli(["queues", "pause", "idle", ...store], dir)).code, 0);
    const queues = await cli(["queues", ...store], dir);
    assert.equal(queues.code, 0, queues.stderr);
    assert.match(queues.stdout, /^bulk\s+paused\s+queued=1 running=0 waiting=0$/m);
    assert.match(queues.stdout, /^idle\s+paused\s+empty$/m);
    assert.match((await cli(["status", ...store], dir)).stdout, /^paused: bulk, idle$/m);
    {
      await using q = await openQueue(dir);
      const record = await q.get(id);
      assert.equal(record?.deadLetter, "dead");
      assert.equal(record.ageAfter, 3_600_000);
      assert.ok(record.keyUntil);
      assert.deepEqual([record.group, record.groupConcurrency], ["acme", 3]);
      await q.run({ until: "idle", queues: ["bulk"] });
      assert.equal((await q.get(id))?.state, "queued", "the paused queue kept its task");
    }
    const resume = await cli(["queues", "resume", "bulk", ...store], dir);
    assert.equal(resume.code, 0, resume.stderr);
    assert.match((await cli(["queues", ...store], dir)).stdout, /^bulk\s+active/m);
    await using q = await openQueue(dir);
    await q.run({ until: "idle", queues: ["bulk"] });
    assert.equal(await q.wait(id), 4);
    const bad = await cli(
      ["enqueue", "pool-add", "[1, 1]", "--dead-letter", "default", ...store],
      dir,
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /deadLetter: the dead-letter queue must differ/);
  });
});

Deno.test("cli: events --follow tails new events until SIGINT, then exits 0", async () => {
  await withDir(async (dir, store) => {
    await using q = await openQueue(dir);
    const child = command(["events", "--follow", "--type", "completed", ...store], dir).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const errText = (async () => {
      let s = "";
      for (;;) {
        const { value, done } = await stderr.read();
        if (done) return s;
        s += value;
      }
    })();
    try {
      const id = await q.enqueue("pool-add", [4, 5]);
      await q.run({ until: "idle" });
      let seen = "";
      const deadline = Date.now() + 30_000;
      while (!seen.includes(id)) {
        assert.ok(Date.now() < deadline, "the followed event never arrived");
        const { value, done } = await lines.read();
        if (done) throw new Error(`events --follow ended early: ${await errText}`);
        seen += value;
      }
      assert.match(seen, new RegExp(`completed\\s+${id}`));
      child.kill("SIGINT");
      const status = await child.status;
      assert.equal(status.code, 0, await errText);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* already ended */ }
      while (!(await lines.read()).done) { /* drain */ }
      await errText;
      await child.status;
    }
  });
});

Deno.test("cli: a worker stopped by SIGTERM mid-run exits 0 and loses no task", async () => {
  await withDir(async (dir, store) => {
    await using q = await openQueue(dir);
    const TASKS = 40;
    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, () => ({ task: "pool-slow", args: [1_000] })),
    );
    const child = command(
      ["worker", ...store, "--concurrency", "4", "--grace", "200ms", "--no-scheduler"],
      dir,
    ).spawn();
    const output = child.output();
    let signalled = 0;
    try {
      // Mid-run: the first wave is done and the second is running.
      await waitUntil("the CLI worker to complete its first tasks", async () => {
        const stats = await q.stats();
        return stats.total.completed >= 4 && stats.total.running > 0;
      });
      child.kill("SIGTERM");
      signalled = Date.now();
    } catch (error) {
      child.kill("SIGKILL");
      await output;
      throw error;
    }
    const out = await output;
    const stopTime = Date.now() - signalled;
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, `the worker exited with ${out.code}:\n${stderr}`);
    assert.ok(stopTime < 8_000, `the worker took ${stopTime} ms to stop`);
    assert.match(stderr, /stopping/);

    const after = await q.stats();
    assert.equal(after.total.running, 0, "nothing is left running with a dead lease");
    const byCli = after.total.completed;
    assert.ok(byCli >= 4 && byCli < TASKS, `the CLI worker completed ${byCli}`);
    // Not a terminal: plain progress lines, the last one with this worker's own counts.
    const last = stderr.split("\n").filter((l) => / done, /.test(l)).at(-1) ?? "";
    assert.match(last, new RegExp(`^omniq: ${byCli} done, 0 failed, \\d+ retried, 0 running; `));
    assert.ok(!stderr.includes("\r") && !stderr.includes("\x1b["), "no terminal codes in a log");

    // The rest run here.
    await q.run({ until: "idle", concurrency: TASKS, pollInterval: "20ms" });
    const stats = await q.stats();
    assert.equal(stats.total.completed, TASKS, JSON.stringify(stats.total));

    const completed = new Map<string, number>();
    const handedBack = new Set<string>();
    for (const e of await allEvents(q)) {
      if (e.type === "completed") completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
      if (e.type === "retrying") {
        const error = (e.data as { error: { name: string } }).error;
        assert.equal(error.name, "WorkerStopped", `task ${e.taskId} retried for ${error.name}`);
        handedBack.add(e.taskId!);
      }
      assert.notEqual(e.type, "stalled", `task ${e.taskId} stalled: its lease was left to lapse`);
      assert.notEqual(e.type, "failed");
    }
    for (const id of ids) assert.equal(completed.get(id), 1, `task ${id} completed once`);
    console.log(
      `SIGTERM: stopped in ${stopTime} ms; ${byCli} completed by the CLI worker, ${handedBack.size} handed back`,
    );
    assert.ok(handedBack.size >= 1, "the running tasks past the grace were handed back");
    for (const id of handedBack) assert.equal((await q.get(id))?.attempts, 2);
    for (const id of ids) assert.equal(await q.wait(id), 1_000);
  });
});

Deno.test("cli: a thread worker from --config stops on SIGINT after finishing its task", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(
      `${dir}/omniq.yaml`,
      [
        `backend: "sqlite:${dir}/queue.db"`,
        `tasks:`,
        `  - ${FIXTURE.pathname}`,
        `worker:`,
        `  queues: [high, default]`,
        `  pollInterval: 50ms`,
        `  scheduler: false`,
      ].join("\n"),
    );
    await using q = await openQueue(dir);
    const slow = await q.enqueue("pool-slow", [800], { queue: "high" });
    const child = command(
      ["worker", "--config", `${dir}/omniq.yaml`, "--type", "thread", "--concurrency", "2"],
      dir,
    ).spawn();
    const output = child.output();
    try {
      await waitUntil("the task to start", async () => (await q.get(slow))?.state === "running");
      child.kill("SIGINT");
    } catch (error) {
      child.kill("SIGKILL");
      await output;
      throw error;
    }
    const out = await output;
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    assert.match(stderr, /started \(thread\)/);
    // The default grace (30 s) let the running task finish: completed once, not handed back.
    assert.equal(await q.wait(slow), 800);
    const types = (await allEvents(q)).filter((e) => e.taskId === slow).map((e) => e.type);
    assert.deepEqual(types.filter((t) => t !== "progress"), ["enqueued", "started", "completed"]);
  });
});

Deno.test("cli: dashboard serves the store until SIGTERM, with a token when asked", async () => {
  await withDir(async (dir, store) => {
    const q = await openQueue(dir);
    await q.enqueue("pool-add", [1, 2]);
    await q.close();
    const token = "cli-dashboard-token-123";
    const child = command(["dashboard", ...store, "--port", "0", "--token", token], dir).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await lines.read();
      assert.ok(!done, "the CLI printed its address");
      first += value;
    }
    const url = new URL(first.trim());
    assert.equal(url.hostname, "127.0.0.1");
    assert.equal(url.searchParams.get("token"), token);
    const refused = await fetch(new URL("/api/overview", url));
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    const overview = await fetch(new URL("/api/overview", url), {
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal((await overview.json()).stats.total.queued, 1);
    child.kill("SIGTERM");
    const [status] = await Promise.all([child.status, lines.cancel(), child.stderr.cancel()]);
    assert.equal(status.code, 0);
  });
});

Deno.test("cli: dashboard takes its token from OMNIQ_DASHBOARD_TOKEN, not as a config key", async () => {
  await withDir(async (dir, store) => {
    const token = "token-from-the-environment";
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--config=${CONFIG}`,
        "-A",
        CLI,
        "dashboard",
        ...store,
        "--port",
        "0",
      ],
      cwd: dir,
      clearEnv: true,
      env: { ...CHILD_ENV, OMNIQ_DASHBOARD_TOKEN: token },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) assert.fail(`the CLI printed no address: ${(await stderr.read()).value}`);
      first += value;
    }
    const url = new URL(first.trim());
    assert.equal(url.searchParams.get("token"), token);
    const refused = await fetch(new URL("/api/overview", url));
    await refused.body?.cancel();
    assert.equal(refused.status, 401);
    const ok = await fetch(new URL("/api/overview", url), {
      headers: { authorization: `Bearer ${token}` },
    });
    await ok.body?.cancel();
    assert.equal(ok.status, 200);
    child.kill("SIGTERM");
    const [status] = await Promise.all([child.status, lines.cancel(), stderr.cancel()]);
    assert.equal(status.code, 0);
  });
});

Deno.test("cli: dashboard refuses a non-loopback address without a token", async () => {
  await withDir(async (dir, store) => {
    const out = await cli(["dashboard", ...store, "--hostname", "0.0.0.0", "--port", "0"], dir);
    assert.equal(out.code, 2, "a configuration error");
    assert.match(out.stderr, /not loopback, needs a token/);
  });
});

Deno.test("cli: status --watch prints the table again until SIGINT", async () => {
  await withDir(async (dir, store) => {
    const q = await openQueue(dir);
    await q.enqueue("pool-add", [1, 2]);
    await q.close();
    const child = command(["status", "--watch", ...store], dir).spawn();
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while ((seen.match(/^total /gm) ?? []).length < 2) {
      const { value, done } = await lines.read();
      assert.ok(!done, `the table came twice:\n${seen}`);
      seen += value;
    }
    child.kill("SIGINT");
    const [status] = await Promise.all([child.status, lines.cancel(), child.stderr.cancel()]);
    assert.equal(status.code, 0);
    assert.match(seen, /^-- \d{4}-\d\d-\d\dT/m, "a plain separator, not a terminal's clear");
    assert.match(seen, /^default\s+0\s+0\s+1\s/m);
  });
});

Deno.test("cli: on a terminal the worker keeps one progress line up to date", async () => {
  const script = await findBinary("script");
  assert.ok(script, "util-linux's script (for a terminal) is on this machine");
  await withDir(async (dir, store) => {
    const q = await openQueue(dir);
    await q.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ task: "pool-add", args: [i, 1] })));
    await q.close();
    // `script` runs the worker on a pseudo-terminal and copies what it writes.
    const line = [Deno.execPath(), "run", "--quiet", `--config=${CONFIG}`, "-A", CLI, "worker"]
      .concat(store, ["--no-scheduler"]).map((a) => `'${a}'`).join(" ");
    const child = new Deno.Command(script, {
      args: ["-qfec", line, "/dev/null"],
      cwd: dir,
      clearEnv: true,
      env: { ...CHILD_ENV, TERM: "xterm" },
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("\r\x1b[2Komniq: 20 done, 0 failed, 0 retried, 0 running")) {
      const { value, done } = await reader.read();
      assert.ok(!done, `a live line counted the 20 tasks:\n${JSON.stringify(seen)}`);
      seen += value;
    }
    child.kill("SIGTERM");
    await Promise.all([child.status, reader.cancel(), child.stderr.cancel()]);
    await child.stdin.close().catch(() => {});
  });
});
