// The npm build under Node: build the package (`scripts/build_npm.ts`), pack it, install
// the tarball into fresh Node projects of their own under `dist/` (npm's cache keeps the
// reinstall cheap), then run under `node --test` the conformance suite for memory,
// sqlite, file, postgres, redis and nats, the pools, the blocking API and the CLI
// (tests/node/*.mjs), the errors for a missing optional driver (a project without them),
// SQLite through node:sqlite on Node 22 (npm's `node-linux-<arch>` build where the PATH's Node
// is older), and the Node example. Each Node run is one test here, which fails unless Node
// reports every one of its tests passed. Also: the npm `exports` map must match `deno.json`'s
// one for one, each target built.

import assert from "node:assert/strict";
import { buildNpm } from "../../scripts/build_npm.ts";
import { TEST_ENV } from "../servers.ts";

const ROOT = new URL("../../", import.meta.url);

async function run(
  cmd: string,
  args: string[],
  cwd: URL,
  env: Record<string, string> = {},
): Promise<{ code: number; out: string }> {
  const output = await new Deno.Command(cmd, { args, cwd, env, stdout: "piped", stderr: "piped" })
    .output();
  const text = new TextDecoder();
  return { code: output.code, out: text.decode(output.stdout) + text.decode(output.stderr) };
}

async function must(cmd: string, args: string[], cwd: URL): Promise<string> {
  const { code, out } = await run(cmd, args, cwd);
  if (code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited with ${code}:\n${out}`);
  return out;
}

/** The Node major version on PATH. */
async function nodeMajor(): Promise<number> {
  const out = await must("node", ["--version"], ROOT);
  return Number(/^v(\d+)/.exec(out.trim())?.[1]);
}

/** The tarball `npm pack` made of the build, once per run. */
let packed: Promise<URL> | undefined;

function pack(): Promise<URL> {
  return packed ??= (async () => {
    const out = await buildNpm();
    const dir = new URL("dist/", ROOT);
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(".tgz")) await Deno.remove(new URL(e.name, dir));
    }
    const name = (await must("npm", [
      "pack",
      decodeURIComponent(out.pathname),
      "--pack-destination",
      decodeURIComponent(dir.pathname),
      "--loglevel=error",
    ], ROOT)).trim().split("\n").at(-1)!;
    return new URL(name, dir);
  })();
}

const projects = new Map<string, Promise<URL>>();

/**
 * A fresh Node project in `dist/<name>/` (npm's cache keeps the reinstall cheap)
 * with the packed build and `extras` installed, and the test programs copied in.
 */
function project(name: string, extras: string[]): Promise<URL> {
  let ready = projects.get(name);
  if (!ready) {
    ready = (async () => {
      const dir = new URL(`dist/${name}/`, ROOT);
      const tarball = await pack();
      await Deno.mkdir(new URL("fixtures/", dir), { recursive: true });
      await Deno.writeTextFile(
        new URL("package.json", dir),
        JSON.stringify({ name: `omniq-${name}`, private: true, type: "module" }, null, 2),
      );
      // A removed peer must not linger from an earlier run: npm prunes what package.json
      // does not name, and it names only what this install adds.
      await Deno.remove(new URL("package-lock.json", dir)).catch(() => {});
      await Deno.remove(new URL("node_modules/", dir), { recursive: true }).catch(() => {});
      await must("npm", [
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        decodeURIComponent(tarball.pathname),
        ...extras,
      ], dir);
      const tests = new URL("tests/node/", ROOT);
      for await (const e of Deno.readDir(tests)) {
        if (e.name.endsWith(".mjs")) {
          await Deno.copyFile(new URL(e.name, tests), new URL(e.name, dir));
        }
      }
      await Deno.copyFile(new URL("fixtures/tasks.mjs", tests), new URL("fixtures/tasks.mjs", dir));
      return dir;
    })();
    projects.set(name, ready);
  }
  return ready;
}

/** The project with every optional peer the tests use. */
async function full(): Promise<URL> {
  const extras = ["postgres", "redis"];
  // Node 20 has no node:sqlite: the optional driver the package names.
  if (await nodeMajor() < 22) extras.push("better-sqlite3@12");
  return project("node-project", extras);
}

/**
 * A Node 22 binary, for `node:sqlite`: the `node` on PATH when it is 22.13 or later, else the
 * official build npm publishes as `node-linux-<arch>@22`, installed into `dist/node22/`.
 */
let node22: Promise<string> | undefined;

function newerNode(): Promise<string> {
  return node22 ??= (async () => {
    const [major, minor] = (await must("node", ["--version"], ROOT)).trim().slice(1).split(".")
      .map(Number);
    if (major > 22 || (major === 22 && minor >= 13)) return "node";
    if (Deno.build.os !== "linux") {
      throw new Error(`node:sqlite needs Node 22.13 or later on PATH (this is ${major}.${minor})`);
    }
    const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
    const dir = new URL("dist/node22/", ROOT);
    const bin = new URL(`node_modules/node-linux-${arch}/bin/node`, dir);
    try {
      await Deno.stat(bin);
    } catch {
      await Deno.mkdir(dir, { recursive: true });
      await Deno.writeTextFile(new URL("package.json", dir), '{ "private": true }');
      await must("npm", [
        "install",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        `node-linux-${arch}@22`,
      ], dir);
    }
    return decodeURIComponent(bin.pathname);
  })();
}

/** Run one `node --test` file; fail unless Node counts passes and no failure. */
async function nodeTest(
  dir: URL,
  file: string,
  args: string[] = [],
  node = "node",
): Promise<void> {
  const env: Record<string, string> = {};
  for (const name of Object.values(TEST_ENV)) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  const { code, out } = await run(
    node,
    ["--no-warnings", "--test-reporter=tap", file, ...args],
    dir,
    env,
  );
  const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, "m").exec(out)?.[1]);
  const failures = out.split("\n").filter((l) => /^not ok /.test(l)).join("\n");
  assert.equal(code, 0, `node ${file} ${args.join(" ")} failed:\n${failures}\n${out.slice(-4000)}`);
  assert.equal(count("fail"), 0, out.slice(-4000));
  // Nothing may pass by being left out: a skipped case is a failure here.
  assert.equal(count("skipped"), 0, `node skipped tests:\n${out.slice(-2000)}`);
  assert.ok(count("pass") > 0, `node ran no test:\n${out.slice(-2000)}`);
}

Deno.test("npm build: its exports map is deno.json's, one for one, every target built", async () => {
  await pack();
  const deno = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const pkg = JSON.parse(await Deno.readTextFile(new URL("dist/npm/package.json", ROOT)));
  assert.deepEqual(Object.keys(pkg.exports), Object.keys(deno.exports));
  for (const [subpath, source] of Object.entries(deno.exports as Record<string, string>)) {
    const target = pkg.exports[subpath];
    const base = source.replace(/\.ts$/, "");
    assert.deepEqual(target, { types: `${base}.d.ts`, import: `${base}.js` }, subpath);
    for (const file of [target.types, target.import]) {
      await Deno.stat(new URL(`dist/npm/${file}`, ROOT));
    }
  }
  assert.equal(pkg.version, deno.version);
  assert.equal(pkg.license, deno.license);
  assert.ok(pkg.engines.node, "engines.node is set");
  assert.equal(pkg.bin.omniq, "./bin/omniq.js");
});

for (const engine of ["memory", "sqlite", "file", "postgres", "redis", "nats"]) {
  Deno.test(`node: the conformance suite on ${engine}`, async () =>
    nodeTest(await full(), "conformance.mjs", [engine]));
}

Deno.test("node: thread and process pools, the blocking API, the CLI", async () =>
  nodeTest(await full(), "pools.mjs"));

Deno.test("node: with no optional package, a clear error naming it, at open", async () =>
  nodeTest(await project("node-bare", []), "missing.mjs"));

Deno.test("node 22: the conformance suite on sqlite through node:sqlite", async () => {
  const node = await newerNode();
  // The bare project: no better-sqlite3 there, so node:sqlite is what runs.
  await nodeTest(await project("node-bare", []), "conformance.mjs", ["sqlite"], node);
});

Deno.test("node 22: with no optional package, node:sqlite runs the default engine", async () =>
  nodeTest(await project("node-bare", []), "missing.mjs", [], await newerNode()));

Deno.test("node example: examples/node installs the built package and prints its results", async () => {
  await pack();
  // A copy under dist/, its `file:../../dist/npm` turned into this build's absolute path.
  const dir = new URL("dist/node-example/", ROOT);
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.mkdir(dir, { recursive: true });
  const source = new URL("examples/node/", ROOT);
  for (const name of ["package.json", ".npmrc", "main.mjs", "tasks.mjs"]) {
    await Deno.copyFile(new URL(name, source), new URL(name, dir));
  }
  const manifest = JSON.parse(await Deno.readTextFile(new URL("package.json", dir)));
  assert.equal(manifest.dependencies.omniq, "file:../../dist/npm");
  manifest.dependencies.omniq = `file:${decodeURIComponent(new URL("dist/npm", ROOT).pathname)}`;
  await Deno.writeTextFile(new URL("package.json", dir), JSON.stringify(manifest, null, 2));
  await must("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], dir);
  const out = await must("npm", ["start", "--silent"], dir);
  assert.match(out, /enqueued 5 tasks/);
  assert.match(out, /thumbnail beach\.jpg: beach\.jpg@64, beach\.jpg@256/);
  assert.match(out, /album: \{"name":"holiday","photos":3\}/);
  assert.match(out, /flaky: 42 after 1 retry/);
  assert.match(out, /states: 5 completed/);
});

Deno.test("node: the dashboard on node:http, SQLite's checkpoint thread", async () =>
  nodeTest(await full(), "dashboard.mjs"));
