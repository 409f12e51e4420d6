// The registry: an engine from outside the repository opens through OmniQ.open by its
// scheme and its object form, a taken scheme is refused, and the static import graph shows
// the arrows point the right way (the core names no engine and no pool; engines and the
// YAML parser load only when used).
import assert from "node:assert/strict";
import { ConfigError, defineTask, OmniQ, validateConfig } from "../mod.ts";
import { registerEngine } from "../engine.ts";
import { openMemory } from "../backends/memory/mod.ts";

const triple = defineTask("registry.triple", (n: number) => n * 3);

registerEngine({
  name: "scratch",
  schemes: ["scratch"],
  options: { name: "string", size: "positive" },
  openUrl: (_url, rest) => Promise.resolve(openMemory(`scratch-${rest}`)),
  openOptions: (options) => Promise.resolve(openMemory(`scratch-${options.name}`)),
});

Deno.test("registry: an outside engine opens by its URL scheme and runs tasks", async () => {
  await using q = await OmniQ.open(`scratch:${crypto.randomUUID()}`);
  const id = await q.enqueue(triple, [14]);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id, { timeout: "5s" }), 42);
});

Deno.test("registry: an outside engine's object form is checked against its schema", async () => {
  const name = crypto.randomUUID();
  await using q = await OmniQ.open({ backend: { scratch: { name, size: 2 } } });
  const id = await q.enqueue(triple, [2]);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id), 6);
  assert.throws(
    () => validateConfig({ backend: { scratch: { name, size: 0 } } }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === "backend.scratch.size: expected a positive integer, got 0",
  );
  assert.throws(
    () => validateConfig({ backend: { scratch: { nmae: name } } }),
    (e: unknown) =>
      e instanceof ConfigError &&
      /backend\.scratch\.nmae: unknown key.*"backend\.scratch\.name"/.test(e.message),
  );
});

Deno.test("registry: a scheme another engine owns is refused, naming both", () => {
  assert.throws(
    () =>
      registerEngine({
        name: "impostor",
        schemes: ["sqlite"],
        openUrl: () => Promise.reject(new Error("never opened")),
      }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === `engine "impostor": the scheme "sqlite:" belongs to "sqlite"`,
  );
  // The refused engine left nothing behind: sqlite: still opens SQLite.
  assert.throws(
    () => validateConfig({ backend: { impostor: {} } }),
    (e: unknown) => e instanceof ConfigError && /unknown engine/.test(e.message),
  );
});

Deno.test("registry: an unknown scheme lists the registered ones, outside engines too", async () => {
  await assert.rejects(
    () => OmniQ.open("sqlit:./x.db"),
    (e: unknown) =>
      e instanceof ConfigError && e.message.includes('unknown URL scheme "sqlit:"') &&
      e.message.includes(
        "memory:, sqlite:, file:, kv:, postgres:, redis:, nats:, s3:, az:, gs:, scratch:",
      ),
  );
});

Deno.test("registry: an unknown worker type names the registered ones", async () => {
  await using q = await OmniQ.open("memory:");
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => q.worker({ type: "fiber" as any }),
    (e: unknown) =>
      e instanceof ConfigError &&
      e.message === 'worker.type: expected "async", "thread" or "process", got "fiber"',
  );
});

/** The modules `root` imports statically, transitively (dynamic imports not followed). */
async function staticGraph(root: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  assert.ok(out.success, `deno info ${root} failed`);
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const deps = new Map(info.modules.map((m) => [m.specifier, m.dependencies ?? []]));
  const seen = new Set<string>();
  const walk = (specifier: string) => {
    if (seen.has(specifier)) return;
    seen.add(specifier);
    for (const dep of deps.get(specifier) ?? []) {
      if (!dep.isDynamic && dep.code) walk(dep.code.specifier);
    }
  };
  walk(info.modules.find((m) => m.specifier.endsWith(root.replace(/^\.\.?\//, "")))!.specifier);
  return seen;
}

Deno.test("registry: the core imports no engine and no pool; engines and YAML load lazily", async () => {
  const root = new URL("../", import.meta.url);
  const core = await staticGraph(new URL("src/omniq.ts", root).pathname);
  const named = [...core].filter((s) =>
    s.includes("/backends/") || /\/workers\/(thread|process)\.ts$/.test(s) ||
    s.startsWith("npm:")
  );
  // The core's only package is the codec's (msgpackr), and croner for schedules.
  assert.deepEqual(
    named.filter((s) => !/msgpackr|croner/.test(s)),
    [],
    "src/omniq.ts reaches engines, pools or packages statically",
  );
  const top = await staticGraph(new URL("mod.ts", root).pathname);
  for (const lazy of ["npm:/yaml", "npm:/postgres", "npm:/redis", "npm:/@nats-io", "node:sqlite"]) {
    assert.equal(
      [...top].some((s) => s.startsWith(lazy)),
      false,
      `mod.ts loads ${lazy} before it is used`,
    );
  }
  for (const engine of ["memory", "sqlite", "file", "kv", "postgres", "redis", "nats"]) {
    assert.equal(top.has(new URL(`backends/${engine}/mod.ts`, root).href), false, engine);
    assert.equal(top.has(new URL(`backends/${engine}/engine.ts`, root).href), true, engine);
  }
});
