// The npm build under Node: build the package (`scripts/build_npm.ts`), pack it, install
// the tarball into a Node project of its own (`dist/node-project/`, kept between runs so
// npm's installs are paid once), then run under `node --test` the conformance suite for
// memory, sqlite, file, postgres, redis and nats, the pools, the blocking API and the CLI
// (tests/node/*.mjs), and the Node example. Each Node run is one test here, which fails
// unless Node reports every one of its tests passed. Also: the npm `exports` map must match
// `deno.json`'s one for one, each target built.

import assert from "node:assert/strict";
import { buildNpm } from "../../scripts/build_npm.ts";
import { TEST_ENV } from "../servers.ts";

const ROOT = new URL("../../", import.meta.url);
const PROJECT = new URL("dist/node-project/", ROOT);

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

let ready: Promise<void> | undefined;

/** Build, pack and install once per run. */
function project(): Promise<void> {
  return ready ??= (async () => {
    const out = await buildNpm();
    await Deno.mkdir(PROJECT, { recursive: true });
    for await (const e of Deno.readDir(PROJECT)) {
      if (e.name.endsWith(".tgz")) await Deno.remove(new URL(e.name, PROJECT));
    }
    const packed = (await must("npm", [
      "pack",
      decodeURIComponent(out.pathname),
      "--pack-destination",
      decodeURIComponent(PROJECT.pathname),
      "--loglevel=error",
    ], ROOT)).trim().split("\n").at(-1)!;
    const tests = new URL("tests/node/", ROOT);
    await Deno.writeTextFile(
      new URL("package.json", PROJECT),
      JSON.stringify({ name: "omniq-node-tests", private: true, type: "module" }, null, 2),
    );
    const extras = ["postgres", "redis"];
    // Node 20 has no node:sqlite: the optional driver the package names.
    if (await nodeMajor() < 22) extras.push("better-sqlite3@12");
    await must("npm", [
      "install",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
      `./${packed}`,
      ...extras,
    ], PROJECT);
    for (const name of ["conformance.mjs", "pools.mjs"]) {
      await Deno.copyFile(new URL(name, tests), new URL(name, PROJECT));
    }
    await Deno.mkdir(new URL("fixtures/", PROJECT), { recursive: true });
    await Deno.copyFile(
      new URL("fixtures/tasks.mjs", tests),
      new URL("fixtures/tasks.mjs", PROJECT),
    );
  })();
}

/** Run one `node --test` file; fail unless Node counts passes and no failure. */
async function nodeTest(file: string, args: string[] = []): Promise<void> {
  await project();
  const env: Record<string, string> = {};
  for (const name of Object.values(TEST_ENV)) {
    const value = Deno.env.get(name);
    if (value) env[name] = value;
  }
  const { code, out } = await run(
    "node",
    ["--test-reporter=tap", file, ...args],
    PROJECT,
    env,
  );
  const count = (what: string) => Number(new RegExp(`^# ${what} (\\d+)$`, "m").exec(out)?.[1]);
  const failures = out.split("\n").filter((l) => /^not ok /.test(l)).join("\n");
  assert.equal(code, 0, `node ${file} ${args.join(" ")} failed:\n${failures}\n${out.slice(-4000)}`);
  assert.equal(count("fail"), 0, out.slice(-4000));
  assert.ok(count("pass") > 0, `node ran no test:\n${out.slice(-2000)}`);
}

Deno.test("npm build: its exports map is deno.json's, one for one, every target built", async () => {
  await project();
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
  Deno.test(`node: the conformance suite on ${engine}`, () =>
    nodeTest("conformance.mjs", [engine]));
}

Deno.test("node: thread and process pools, the blocking API, the CLI, Node's errors", () =>
  nodeTest("pools.mjs"));
