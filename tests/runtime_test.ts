// The runtime seam holds: no module the library's entry points reach calls a `Deno.` API
// except the Deno edge (src/runtime/deno.ts), and `siblingModule` picks the form the library
// runs from. The npm build's own checks are in tests/node/suite.ts.

import assert from "node:assert/strict";
import { runtime, siblingModule } from "../src/runtime/mod.ts";
import { nodeUnsupported } from "../src/runtime/node.ts";

const ROOT = new URL("../", import.meta.url);
const ENTRIES = [
  ...Object.values(
    JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT))).exports as Record<
      string,
      string
    >,
  ),
  "./workers/thread_entry.ts",
  "./workers/process_entry.ts",
  "./sync_host.ts",
];

async function localModules(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: ROOT,
    stdout: "piped",
  }).output();
  assert.equal(out.code, 0, `deno info ${entry}`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier).filter((s) => s.startsWith(ROOT.href));
}

/** The code of a module without its comments (doc examples may show Deno calls). */
function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

Deno.test("no module of the library calls Deno.* but the Deno edge of the runtime seam", async () => {
  const modules = new Set<string>();
  for (const entry of ENTRIES) for (const m of await localModules(entry)) modules.add(m);
  assert.ok(modules.size > 50, `the graph has the library's modules (${modules.size})`);
  const allowed = new URL("src/runtime/deno.ts", ROOT).href;
  const offenders: string[] = [];
  for (const m of modules) {
    if (m === allowed || m.includes("/tests/")) continue;
    const text = code(await Deno.readTextFile(new URL(m)));
    const hit = /\bDeno\.[A-Za-z]+/.exec(text);
    if (hit) offenders.push(`${m.slice(ROOT.href.length)}: ${hit[0]}`);
  }
  assert.deepEqual(offenders, []);
});

Deno.test("the runtime seam picks Deno here and answers as Deno does", async () => {
  assert.equal(runtime.name, "deno");
  assert.equal(runtime.version, Deno.version.deno);
  assert.equal(runtime.pid, Deno.pid);
  assert.equal(runtime.cwd(), Deno.cwd());
  const dir = await runtime.fs.makeTempDir("omniq_runtime_");
  try {
    const file = `${dir}/a`;
    await runtime.fs.writeFile(file, new Uint8Array([1]), { createNew: true });
    await assert.rejects(
      () => runtime.fs.writeFile(file, new Uint8Array([2]), { createNew: true }),
      (e: unknown) => runtime.fs.isAlreadyExists(e),
    );
    await runtime.fs.writeFile(file, new Uint8Array([2]), { append: true });
    assert.deepEqual(await runtime.fs.readFile(file), new Uint8Array([1, 2]));
    await assert.rejects(() => runtime.fs.stat(`${dir}/none`), (e) => runtime.fs.isNotFound(e));
    const names = [];
    for await (const e of runtime.fs.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["a"]);
  } finally {
    await runtime.fs.remove(dir, { recursive: true });
  }
});

Deno.test("siblingModule keeps the calling module's form (.ts sources, .js build)", () => {
  assert.equal(
    siblingModule("./thread_entry", "file:///x/workers/thread.ts").href,
    "file:///x/workers/thread_entry.ts",
  );
  assert.equal(
    siblingModule("./thread_entry", "file:///x/node_modules/omniq/workers/thread.js").href,
    "file:///x/node_modules/omniq/workers/thread_entry.js",
  );
});

Deno.test("a Node older than 20 is refused with the version to install; 20 and later run", () => {
  const why = nodeUnsupported("18.19.1");
  assert.ok(why);
  assert.match(why, /Node 20 or later/);
  assert.match(why, /18\.19\.1/);
  assert.equal(nodeUnsupported("v16.0.0")?.includes("Node 20 or later"), true);
  assert.equal(nodeUnsupported("20.0.0"), undefined);
  assert.equal(nodeUnsupported("22.13.1"), undefined);
  assert.equal(runtime.unsupported(), undefined, "this Deno is supported");
});
