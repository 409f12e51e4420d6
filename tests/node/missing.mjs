// Under Node, in a project that installed the package alone (none of its optional peers):
// what needs a missing optional driver fails at open with an error naming the package to
// install, never at import, and what needs none still runs.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ConfigError, defineTask, OmniQ, OmniQError } from "omniq";

const major = Number(process.versions.node.split(".")[0]);
const minor = Number(process.versions.node.split(".")[1]);
// node:sqlite is there without a flag from Node 22.13 (and 23.4).
const builtinSqlite = major > 22 || (major === 22 && minor >= 13);

async function withDir(fn) {
  const dir = await mkdtemp(join(tmpdir(), "omniq_node_missing_"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true });
  }
}

test("kv: the Deno KV engine is refused on Node, naming what to use instead", async () => {
  await withDir(async (dir) => {
    await assert.rejects(
      () => OmniQ.open({ backend: `kv:${dir}/kv.db` }),
      (e) =>
        e instanceof ConfigError && /Deno only/.test(e.message) &&
        /sqlite: or file:/.test(e.message),
    );
  });
});

test(
  builtinSqlite
    ? "sqlite: node:sqlite runs the default engine with no driver installed"
    : "sqlite: with neither node:sqlite nor better-sqlite3, opening names both",
  async () => {
    await withDir(async (dir) => {
      if (builtinSqlite) {
        const add = defineTask("missing-add", (a, b) => a + b);
        const q = await OmniQ.open({ backend: `sqlite:${dir}/q.db` });
        try {
          const id = await q.enqueue(add, [2, 3]);
          await q.run({ until: "idle" });
          assert.equal(await q.wait(id), 5);
        } finally {
          await q.close();
        }
        return;
      }
      await assert.rejects(
        () => OmniQ.open({ backend: `sqlite:${dir}/q.db` }),
        (e) =>
          e instanceof OmniQError && /npm install better-sqlite3/.test(e.message) &&
          /node:sqlite/.test(e.message) && e.message.includes(process.versions.node),
      );
    });
  },
);

test("file: the file engine needs no optional package", async () => {
  await withDir(async (dir) => {
    const double = defineTask("missing-double", (n) => n * 2);
    const q = await OmniQ.open({ backend: `file:${dir}/store` });
    try {
      const id = await q.enqueue(double, [21]);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), 42);
    } finally {
      await q.close();
    }
  });
});
