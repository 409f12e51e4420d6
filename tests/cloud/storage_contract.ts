/**
 * The contract every {@linkcode ConditionalStorage} of the `file:` engine keeps, as Deno
 * tests against a real store: `storageContract("s3", () => server.storage(prefix))`
 * registers one test per behaviour, each on a fresh storage (a fresh prefix). The engine
 * relies on every one of them: the list semantics for its indexes, create-if-absent for the
 * lock, the conditional writes for fencing, rename for setting bad files aside.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { ConditionalStorage } from "../../backends/file/storage.ts";

const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array | undefined) =>
  b === undefined ? undefined : new TextDecoder().decode(b);

/**
 * Register the contract's tests for one storage.
 *
 * @param name The store's name in the test names.
 * @param make A fresh, empty storage per call (closed by the test).
 */
export function storageContract(
  name: string,
  make: () => ConditionalStorage | Promise<ConditionalStorage>,
): void {
  const test = (what: string, fn: (st: ConditionalStorage) => Promise<void>) =>
    Deno.test(`${name} storage: ${what}`, async () => {
      const st = await make();
      try {
        await fn(st);
      } finally {
        await st.close();
      }
    });

  test("an absent key reads as undefined everywhere", async (st) => {
    assert.deepEqual(await st.read("tasks/none.json"), undefined);
    assert.deepEqual(await st.readVersioned("tasks/none.json"), undefined);
    assert.deepEqual(await st.versionOf("tasks/none.json"), undefined);
    assert.deepEqual(await st.modified("tasks/none.json"), undefined);
    assert.deepEqual(await st.list("tasks"), []);
    assert.deepEqual(await st.delete("tasks/none.json"), false);
    assert.deepEqual(await st.touch("tasks/none.json"), false);
  });

  test("writeAtomic then read gives the bytes back, binary and empty too", async (st) => {
    const bytes = new Uint8Array([0, 255, 1, 254, 10, 13]);
    await st.writeAtomic("a/bin", bytes);
    assert.deepEqual(await st.read("a/bin"), bytes);
    await st.writeAtomic("a/empty", new Uint8Array(0));
    assert.deepEqual(await st.read("a/empty"), new Uint8Array(0));
    await st.writeAtomic("a/bin", enc("replaced"));
    assert.deepEqual(dec(await st.read("a/bin")), "replaced");
    const at = await st.modified("a/bin");
    assert(at !== undefined && Math.abs(at - Date.now()) < 120_000, `modified ${at}`);
  });

  test("list names what is directly under a prefix: blobs and sub-prefixes, once each", async (st) => {
    await st.writeAtomic("ready/q1/0001-a", new Uint8Array(0));
    await st.writeAtomic("ready/q1/0002-b", new Uint8Array(0));
    await st.writeAtomic("ready/q2/0001-c", new Uint8Array(0));
    await st.writeAtomic("ready-not/x", new Uint8Array(0));
    await st.writeAtomic("readyfile", new Uint8Array(0));
    assert.deepEqual((await st.list("ready")).sort(), ["q1", "q2"]);
    assert.deepEqual((await st.list("ready/q1")).sort(), ["0001-a", "0002-b"]);
    assert.deepEqual(await st.list("ready/q3"), []);
  });

  test("list returns every page", async (st) => {
    const names = Array.from({ length: 1100 }, (_, i) => `n${String(i).padStart(5, "0")}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(names.slice(i, i + 50).map((n) => st.writeAtomic(`many/${n}`, enc(n))));
    }
    assert.deepEqual((await st.list("many")).sort(), names);
  });

  test("createIfAbsent creates once; of 20 racing creators exactly one wins", async (st) => {
    assert.deepEqual(await st.createIfAbsent("lock", enc("first")), true);
    assert.deepEqual(await st.createIfAbsent("lock", enc("second")), false);
    assert.deepEqual(dec(await st.read("lock")), "first");
    const wins = await Promise.all(
      Array.from({ length: 20 }, (_, i) => st.createIfAbsent("race", enc(`w${i}`))),
    );
    assert.deepEqual(wins.filter(Boolean).length, 1);
    assert.deepEqual(dec(await st.read("race")), `w${wins.indexOf(true)}`);
  });

  test("putIf writes only on the expected version; a stale writer changes nothing", async (st) => {
    const v1 = await st.putIf("tasks/t.json", enc("v1"), null);
    assert(v1 !== undefined);
    assert.deepEqual(await st.putIf("tasks/t.json", enc("again"), null), undefined);
    const read = await st.readVersioned("tasks/t.json");
    assert.deepEqual(read?.version, v1);
    assert.deepEqual(await st.versionOf("tasks/t.json"), v1);
    const v2 = await st.putIf("tasks/t.json", enc("v2"), v1);
    assert(v2 !== undefined && v2 !== v1, "a write gives a new version");
    // The writer still holding v1 lost: its write is refused and the newer one stays.
    assert.deepEqual(await st.putIf("tasks/t.json", enc("stale"), v1), undefined);
    assert.deepEqual(dec(await st.read("tasks/t.json")), "v2");
    assert.deepEqual(await st.putIf("tasks/absent.json", enc("x"), v1), undefined);
    assert.deepEqual(await st.read("tasks/absent.json"), undefined);
  });

  test("of 10 writers racing from one version exactly one writes", async (st) => {
    const v = (await st.putIf("k", enc("base"), null))!;
    const outs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => st.putIf("k", enc(`w${i}`), v)),
    );
    const won = outs.filter((o) => o !== undefined);
    assert.deepEqual(won.length, 1);
    assert.deepEqual(dec(await st.read("k")), `w${outs.findIndex((o) => o !== undefined)}`);
  });

  test("deleteIf deletes only on the expected version", async (st) => {
    const v1 = (await st.putIf("d", enc("one"), null))!;
    const v2 = (await st.putIf("d", enc("two"), v1))!;
    assert.deepEqual(await st.deleteIf("d", v1), false);
    assert.deepEqual(dec(await st.read("d")), "two");
    assert.deepEqual(await st.deleteIf("d", v2), true);
    assert.deepEqual(await st.read("d"), undefined);
    assert.deepEqual(await st.deleteIf("d", v2), false);
  });

  test("delete says whether the key existed", async (st) => {
    await st.writeAtomic("x/y", enc("1"));
    assert.deepEqual(await st.delete("x/y"), true);
    assert.deepEqual(await st.delete("x/y"), false);
    assert.deepEqual(await st.list("x"), []);
  });

  test("renameIfAbsent moves once, never over an existing key", async (st) => {
    await st.writeAtomic("meta/journal.json", enc("j"));
    assert.deepEqual(await st.renameIfAbsent("meta/journal.json", "meta/bad-1"), true);
    assert.deepEqual(await st.read("meta/journal.json"), undefined);
    assert.deepEqual(dec(await st.read("meta/bad-1")), "j");
    assert.deepEqual(await st.renameIfAbsent("meta/journal.json", "meta/bad-2"), false);
    await st.writeAtomic("a", enc("a"));
    await st.writeAtomic("b", enc("b"));
    assert.deepEqual(await st.renameIfAbsent("a", "b"), false);
    assert.deepEqual(dec(await st.read("a")), "a");
    assert.deepEqual(dec(await st.read("b")), "b");
    // Two racing renames of one key to two names: one wins, the key ends in one place.
    await st.writeAtomic("src", enc("s"));
    const outs = await Promise.all([
      st.renameIfAbsent("src", "t1"),
      st.renameIfAbsent("src", "t2"),
    ]);
    assert.deepEqual(outs.filter(Boolean).length, 1);
    const held = [await st.read("t1"), await st.read("t2")].filter((b) => b !== undefined);
    assert.deepEqual(held.length, 1);
    assert.deepEqual(await st.read("src"), undefined);
  });

  test("append adds to the end, creating the key", async (st) => {
    await st.append("events/w.jsonl", enc("a\n"));
    await st.append("events/w.jsonl", enc("b\n"));
    await st.append("events/w.jsonl", enc("c\n"));
    assert.deepEqual(dec(await st.read("events/w.jsonl")), "a\nb\nc\n");
    // An append after a whole rewrite (the journal's replay) continues the new bytes.
    await st.writeAtomic("events/w.jsonl", enc("x\n"));
    await st.append("events/w.jsonl", enc("y\n"));
    assert.deepEqual(dec(await st.read("events/w.jsonl")), "x\ny\n");
  });

  test("touch keeps the bytes and moves the modified time", async (st) => {
    await st.writeAtomic("lock", enc("token"));
    const before = (await st.modified("lock"))!;
    // Modified times may have a resolution of one second.
    await new Promise((r) => setTimeout(r, 1_100));
    assert.deepEqual(await st.touch("lock"), true);
    assert.deepEqual(dec(await st.read("lock")), "token");
    const after = (await st.modified("lock"))!;
    assert(after > before, `modified ${before} → ${after}`);
  });

  test("keys as the engine spells them (percent-encoded names) round-trip", async (st) => {
    const keys = ["tasks/a%20b.json", "keys/k~-_.!", "ready/q/9999-%C3%BC", "keys/it's(1)"];
    for (const k of keys) await st.writeAtomic(k, enc(k));
    for (const k of keys) assert.deepEqual(dec(await st.read(k)), k);
    assert.deepEqual((await st.list("keys")).sort(), ["it's(1)", "k~-_.!"]);
  });

  test("a location names the store and never a credential", (st) => {
    assert(st.location.length > 0);
    assert(!/key|secret|sig=|token/i.test(st.location), st.location);
    return Promise.resolve();
  });
}
