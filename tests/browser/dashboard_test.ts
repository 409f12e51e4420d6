// The dashboard in a real browser: headless Chromium from Debian's `chromium` package
// (installed by the test setup when missing, as root), driven by playwright-core. A store
// with tasks in every state a worker can leave them; the test checks the counts, opens a
// task's timeline, retries and cancels through the buttons and sees the states change,
// pauses a schedule, and checks that a `<script>` argument shows as text. Screenshots go to
// the test's temporary directory (and to OMNIQ_DASHBOARD_SCREENSHOTS when it is set, which
// is how the README's pictures are made).
import assert from "node:assert/strict";
import { chromium, type Page } from "playwright-core";
import { defineTask, OmniQ } from "../../mod.ts";
import { serveDashboard } from "../../dashboard/mod.ts";
import { TASK_STATES } from "../../src/types.ts";
import { ensurePackage } from "../servers.ts";

let release = () => {};
const held = new Promise<void>((resolve) => release = resolve);
defineTask("browser-hold", () => held);
defineTask("browser-ok", (n: number) => ({ doubled: n * 2 }));
defineTask("browser-fail", (_s: string) => {
  throw new RangeError("the value was out of range");
}, { retries: 0 });

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what} within 15 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The number in the overview's count cell of a queue ("" for the total) and state. */
async function cell(page: Page, queue: string, state: string): Promise<number> {
  const text = await page.locator(`#counts tr[data-queue="${queue}"] td[data-state="${state}"]`)
    .textContent();
  return Number(text);
}

Deno.test("dashboard in Chromium: counts, a timeline, retry, cancel, a paused schedule", async () => {
  const executablePath = await ensurePackage("chromium", "chromium");
  const dir = await Deno.makeTempDir({ prefix: "omniq-browser-" });
  const shots = Deno.env.get("OMNIQ_DASHBOARD_SCREENSHOTS");
  const shoot = async (page: Page, name: string) => {
    await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
    if (shots) await Deno.copyFile(`${dir}/${name}.png`, `${shots}/${name}.png`);
  };
  const q = await OmniQ.open(`sqlite:${dir}/q.db`);
  const worker = q.worker({ queues: ["hold"], concurrency: 1, pollInterval: "20ms" });
  const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
  const dashboard = await serveDashboard(q, { port: 0 });
  try {
    // Tasks in every state a worker leaves them in.
    for (let i = 0; i < 3; i++) await q.enqueue("browser-ok", [i]);
    const failed = await q.enqueue("browser-fail", ["<script>window.pwned = 1</script>"], {
      queue: "emails",
    });
    await q.run({ until: "idle", queues: ["default", "emails"] });
    const queued = await q.enqueue("browser-ok", [10]);
    const waiting = await q.enqueue("browser-ok", [11], { dependsOn: [queued] });
    await q.enqueue("browser-ok", [12], { delay: "1h" });
    const cancelled = await q.enqueue("browser-ok", [13]);
    await q.cancel(cancelled);
    await q.enqueue("browser-hold", [], { queue: "hold" });
    await worker.start();
    await until("the held task runs", async () => (await q.stats()).total.running === 1);
    await q.schedule("browser-ok", [99], { id: "nightly-report", cron: "0 3 * * *" });

    const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
    const dialogs: string[] = [];
    page.on("dialog", (dialog) => {
      dialogs.push(`${dialog.type()}: ${dialog.message()}`);
      void dialog.accept();
    });
    await page.goto(dashboard.url);
    await page.locator("#counts").waitFor();
    const stats = await q.stats();
    // Every state but expired, which only a sweep past a TTL makes.
    for (const state of TASK_STATES.filter((s) => s !== "expired")) {
      assert.ok(stats.total[state] > 0, state);
      assert.equal(await cell(page, "", state), stats.total[state], `total ${state}`);
    }
    assert.equal(await cell(page, "emails", "failed"), 1);
    // The worker that runs the held task.
    const seen = page.locator(`#workers tr[data-worker="${worker.id}"] td.n`);
    assert.equal(await seen.textContent(), "1");
    await shoot(page, "overview");

    // The failed task, from the list filtered by state, to its page.
    await page.goto(`${dashboard.url}#/tasks?state=failed`);
    await page.locator(`#tasks tr[data-id="${failed}"] a`).click();
    await page.locator("#timeline").waitFor();
    assert.deepEqual(
      await page.locator("#timeline tr td:nth-child(2)").allTextContents(),
      ["enqueued", "started", "failed"],
    );
    assert.match(await page.locator("#args").textContent() ?? "", /<script>window\.pwned = 1/);
    assert.match(await page.locator("#error").textContent() ?? "", /RangeError: the value/);
    assert.equal(await page.evaluate("window.pwned"), undefined, "the argument stayed text");
    await shoot(page, "task");

    // Retry it: a confirmation, then the state changes in the store and on the page.
    await page.locator("#retry").click();
    await until("the retry", async () => (await q.get(failed))?.state === "queued");
    await until(
      "the page shows it",
      async () => (await page.locator('td[data-fact="state"]').textContent()) === "queued",
    );

    // Cancel the queued task from its page.
    await page.goto(`${dashboard.url}#/task/${queued}`);
    await page.locator("#cancel").click();
    await until("the cancel", async () => (await q.get(queued))?.state === "cancelled");
    // Its dependent is cancelled with it.
    assert.equal((await q.get(waiting))?.state, "cancelled");

    // Pause the schedule.
    await page.goto(`${dashboard.url}#/schedules`);
    await page.locator('#schedules tr[data-id="nightly-report"] button.pause').click();
    await until("the pause", async () => (await q.schedules())[0].paused);
    await page.locator('#schedules tr[data-id="nightly-report"] button.resume').waitFor();
    assert.equal(
      await page.locator('#schedules tr[data-id="nightly-report"] td.paused').textContent(),
      "paused",
    );
    await shoot(page, "schedules");

    // Pause a queue from the overview, then resume it.
    await page.goto(`${dashboard.url}#/`);
    await page.locator('#counts tr[data-queue="emails"] button.pause').click();
    await until("the queue pause", async () => (await q.stats()).paused.includes("emails"));
    await page.locator('#counts tr[data-queue="emails"] button.resume').click();
    await until("the queue resume", async () => (await q.stats()).paused.length === 0);

    await page.goto(`${dashboard.url}#/tasks`);
    await page.locator("#tasks").waitFor();
    await shoot(page, "tasks");

    assert.deepEqual(dialogs.map((d) => d.split(":")[0]), Array(5).fill("confirm"));
    for (const name of ["overview", "task", "schedules", "tasks"]) {
      assert.ok((await Deno.stat(`${dir}/${name}.png`)).size > 5_000, name);
    }
  } finally {
    release();
    await browser.close();
    await dashboard.close();
    await worker.stop();
    await q.close();
    await Deno.remove(dir, { recursive: true });
  }
});
