import assert from "node:assert/strict";
import { decode, defineTask, encode, OmniQ, SerializationError } from "../mod.ts";

const roundTrip = (v: unknown) => decode(encode(v));

Deno.test("codec: plain data round-trips", () => {
  for (const v of [null, undefined, true, 0, -5, 1.5, 2 ** 53 + 2, "text", "", [1, [2, [3]]], {}]) {
    assert.deepEqual(roundTrip(v), v);
  }
  assert.deepEqual(roundTrip({ a: 1, nested: { b: [null, "x"] } }), {
    a: 1,
    nested: { b: [null, "x"] },
  });
});

Deno.test("codec: Date, Map, Set, BigInt, RegExp, typed arrays and errors keep their types", () => {
  const value = {
    when: new Date(1_700_000_000_123),
    map: new Map<unknown, unknown>([["k", 1], [2, { deep: new Set(["s"]) }]]),
    set: new Set([1, "two"]),
    small: 5n,
    big: 2n ** 70n,
    negative: -(2n ** 65n),
    re: /ab+c/gi,
    bytes: new Uint8Array([1, 2, 255]),
    floats: new Float64Array([1.5, -2]),
    error: new TypeError("boom"),
  };
  const back = roundTrip(value) as typeof value;
  assert.ok(back.when instanceof Date && back.when.getTime() === value.when.getTime());
  assert.ok(back.map instanceof Map);
  assert.equal(back.map.get("k"), 1);
  assert.ok((back.map.get(2) as { deep: Set<string> }).deep instanceof Set);
  assert.deepEqual([...back.set], [1, "two"]);
  assert.equal(back.small, 5n);
  assert.equal(back.big, 2n ** 70n);
  assert.equal(back.negative, -(2n ** 65n));
  assert.equal(String(back.re), "/ab+c/gi");
  assert.ok(back.bytes instanceof Uint8Array);
  assert.deepEqual([...back.bytes], [1, 2, 255]);
  assert.ok(back.floats instanceof Float64Array);
  assert.deepEqual([...back.floats], [1.5, -2]);
  assert.ok(back.error instanceof TypeError);
  assert.equal(back.error.message, "boom");
});

Deno.test("codec: a plain object stays an object, not a Map", () => {
  const back = roundTrip({ a: { b: 1 } }) as Record<string, unknown>;
  assert.ok(!(back instanceof Map));
  assert.deepEqual(back, { a: { b: 1 } });
});

Deno.test("codec: cycles and shared references survive through the structured-clone fallback", () => {
  const node: Record<string, unknown> = { name: "root" };
  node.self = node;
  node.children = [node];
  const back = roundTrip(node) as typeof node;
  assert.equal(back.self, back);
  assert.equal((back.children as unknown[])[0], back);

  const shared = { x: 1 };
  const pair = roundTrip([shared, shared]) as unknown[];
  assert.equal(pair[0], pair[1]);
});

Deno.test("codec: functions, symbols and class instances are refused with the path", () => {
  class Point {
    x = 1;
  }
  const cases: [unknown, RegExp][] = [
    [() => 1, /args: a function cannot be serialized/],
    [Symbol("s"), /args: a symbol cannot be serialized/],
    [new Point(), /args: an instance of class Point/],
    [{ a: [1, { f: () => 2 }] }, /args\.a\[1\]\.f: a function/],
    [new Map([["k", new Point()]]), /args\.get\("k"\): an instance of class Point/],
    [{ [Symbol("k")]: 1 }, /symbol-keyed/],
  ];
  for (const [value, message] of cases) {
    assert.throws(() => encode(value, "args"), (e: unknown) => {
      assert.ok(e instanceof SerializationError);
      assert.match((e as Error).message, message);
      return true;
    });
  }
});

Deno.test("codec: bytes of an unknown format or corrupt bytes are a SerializationError", () => {
  assert.throws(() => decode(new Uint8Array([99, 1, 2])), SerializationError);
  const good = encode({ a: "long enough string value" });
  assert.throws(() => decode(good.subarray(0, 5)), SerializationError);
});

Deno.test("codec: every encoding starts with a format byte", () => {
  assert.equal(encode([1])[0], 1);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.equal(encode(cyclic)[0], 2);
});

Deno.test("codec: the JSON codec writes readable JSON and keeps the same types", () => {
  const value = {
    when: new Date(7),
    map: new Map<unknown, unknown>([["k", 1], [2, [3n]]]),
    set: new Set(["a"]),
    big: 2n ** 70n,
    nothing: undefined,
    odd: [NaN, Infinity, -0],
    re: /x+/g,
    bytes: new Uint8Array([1, 2]),
    bigs: new BigInt64Array([5n]),
    dollar: { $date: "not a tag" },
    nested: { list: [{ a: null }] },
  };
  const bytes = encode(value, "value", "json");
  assert.equal(bytes[0], 3);
  const text = new TextDecoder().decode(bytes.subarray(1));
  assert.match(text, /"when":\{"\$date":7\}/);
  const back = decode(bytes) as typeof value;
  assert.equal(back.when.getTime(), 7);
  assert.ok(back.map instanceof Map && back.map.get("k") === 1);
  assert.deepEqual(back.map.get(2), [3n]);
  assert.ok(back.set instanceof Set && back.set.has("a"));
  assert.equal(back.big, 2n ** 70n);
  assert.ok("nothing" in back && back.nothing === undefined);
  assert.ok(Number.isNaN(back.odd[0]) && back.odd[1] === Infinity && Object.is(back.odd[2], -0));
  assert.equal(String(back.re), "/x+/g");
  assert.ok(back.bytes instanceof Uint8Array && back.bytes[1] === 2);
  assert.ok(back.bigs instanceof BigInt64Array && back.bigs[0] === 5n);
  assert.deepEqual(back.dollar, { $date: "not a tag" });
  assert.deepEqual(back.nested, { list: [{ a: null }] });
  // The JSON codec refuses the same values, and falls back to structured clone for cycles.
  assert.throws(() => encode({ f: () => 1 }, "args", "json"), SerializationError);
  const cyclic: unknown[] = [];
  cyclic.push(cyclic);
  assert.equal(encode(cyclic, "args", "json")[0], 2);
});

const answer = defineTask("codec.answer", () => 42);

Deno.test("codec: a worker writes results with the configured codec (json)", async () => {
  await using q = await OmniQ.open({ backend: "memory:", codec: "json" });
  const id = await q.enqueue(answer, []);
  await q.run({ until: "idle" });
  const stored = await q.stores.results.get(id);
  // The first byte names the format; JSON text follows it.
  assert.equal(new TextDecoder().decode(stored!.value!.subarray(1)), "42");
  assert.equal(await q.wait(id), 42);
});
