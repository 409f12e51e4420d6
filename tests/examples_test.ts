// The README's programs run: the quickstart (with the demo task's narrow permissions: read
// and write on its own directory, nothing else) and the API tour.
import assert from "node:assert/strict";

const CONFIG = new URL("../deno.json", import.meta.url).pathname;

async function runExample(file: string, permissions: string[], cwd: string): Promise<string> {
  const path = new URL(`../examples/${file}`, import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", `--config=${CONFIG}`, ...permissions, path],
    cwd,
    env: { NO_COLOR: "1" },
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, `${file} exited ${code}:\n${out}\n${new TextDecoder().decode(stderr)}`);
  return out;
}

Deno.test("examples: the quickstart runs on SQLite with read/write on its directory only", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-demo-" });
  try {
    const out = await runExample("quickstart.ts", [
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
    ], dir);
    assert.match(out, /enqueued 134 tasks/);
    assert.match(out, /134\/134 done · 0 running · \d+ retried · 1 failed/);
    assert.match(out, /report +failed: RangeError: no such month: 2026-13/);
    assert.match(out, /completed +133/);
    assert.ok((await Deno.stat(`${dir}/omniq.db`)).isFile, "the default store is ./omniq.db");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("examples: the API tour runs", async () => {
  const out = await runExample("tour.ts", [], Deno.cwd());
  assert.match(out, /^sum 3$/m);
  assert.match(out, /crawl \{ pages: 3, attempt: 1 \}/);
  assert.match(out, /failed: disk full/);
  assert.match(out, /still queued after 20ms/);
  assert.match(out, /completed live: custom-id-1/);
  assert.match(out, /retry true/);
});
