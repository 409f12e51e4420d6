/**
 * The codec for task arguments and results: MessagePack (through msgpackr) for plain data,
 * keeping `Date`, `Map`, `Set`, `BigInt`, `RegExp`, errors and typed arrays, with msgpackr's
 * structured-clone mode as the fallback for values with cycles or shared references.
 *
 * This is the only module that imports msgpackr. Values are checked before encoding, since
 * msgpackr silently drops functions and flattens class instances: those are refused with a
 * {@linkcode SerializationError} instead.
 *
 * Every encoded value starts with a format byte, so stored records stay readable when the
 * encoding changes: 1 = MessagePack, 2 = MessagePack structured clone, 3 = JSON text (the
 * `codec: "json"` option, for stores people read by hand: types JSON lacks are tagged, as
 * `{"$date": 0}`, `{"$map": [[k, v]]}`, `{"$set": […]}`, `{"$bigint": "1"}` …). A value
 * with cycles is always written as a structured clone.
 *
 * @module
 */

// The pack entry point: msgpackr's main entry reads an environment variable at import.
import { Packr } from "msgpackr/pack";
import { SerializationError } from "./errors.ts";

const FORMAT_MSGPACK = 1;
const FORMAT_CLONE = 2;
const FORMAT_JSON = 3;

/** The codecs a queue can write with; every format is always readable. */
export type CodecName = "msgpack" | "json";

// Records without shared structures: every message carries its own record definitions, so
// any process can decode it. Maps stay Maps because plain objects are written as records.
const OPTIONS = {
  mapsAsObjects: false,
  useRecords: true,
  maxSharedStructures: 0,
  moreTypes: true,
  int64AsType: "bigint",
} as const;

const plain = new Packr(OPTIONS);
const clone = new Packr({ ...OPTIONS, structuredClone: true });

const TYPED_BY_NAME: Record<string, { from(data: ArrayLike<number | bigint>): ArrayBufferView }> = {
  Uint8Array,
  Uint8ClampedArray,
  Uint16Array,
  Uint32Array,
  Int8Array,
  Int16Array,
  Int32Array,
  Float32Array,
  Float64Array,
  // deno-lint-ignore no-explicit-any
  BigInt64Array: BigInt64Array as any,
  // deno-lint-ignore no-explicit-any
  BigUint64Array: BigUint64Array as any,
};

const TYPED_ARRAYS: ReadonlySet<unknown> = new Set(Object.values(TYPED_BY_NAME));

/**
 * What a walk of a value has met: the objects seen, those on the current path (a cycle),
 * and the path's steps, which become a readable path (`args[0].items.get("a")`) only when
 * an error names it: most values are fine, and building a path string per member was a
 * good part of the cost of encoding small arguments.
 */
interface Walk {
  seen: Set<object>;
  ancestors: Set<object>;
  steps: string[];
}

function pathOf(walk: Walk): string {
  return walk.steps.join("");
}

/**
 * Walk a value and report whether it has a cycle or a shared reference (which the plain
 * encoding would duplicate or overflow on); throw for anything the codec cannot carry.
 */
function inspect(value: unknown, walk: Walk): boolean {
  switch (typeof value) {
    case "function":
      throw new SerializationError(
        `${
          pathOf(walk)
        }: a function cannot be serialized; pass data and look the function up by name`,
      );
    case "symbol":
      throw new SerializationError(`${pathOf(walk)}: a symbol cannot be serialized`);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return false;
  const { seen, ancestors, steps } = walk;
  if (ancestors.has(value) || seen.has(value)) return true;
  seen.add(value);
  const proto = Object.getPrototypeOf(value);
  if (
    value instanceof Date || value instanceof RegExp || value instanceof ArrayBuffer ||
    TYPED_ARRAYS.has(proto?.constructor)
  ) {
    return false;
  }
  if (value instanceof Error) {
    return false;
  }
  ancestors.add(value);
  let shared = false;
  const step = (name: string, v: unknown) => {
    steps.push(name);
    shared = inspect(v, walk) || shared;
    steps.pop();
  };
  if (Array.isArray(value)) {
    if (proto !== Array.prototype) throw notPlain(pathOf(walk), value);
    for (let i = 0; i < value.length; i++) {
      const v = value[i];
      // Numbers, strings and the like need no look (nor a step on the path).
      if (typeof v === "object" || typeof v === "function" || typeof v === "symbol") {
        step(`[${i}]`, v);
      }
    }
  } else if (value instanceof Map) {
    if (proto !== Map.prototype) throw notPlain(pathOf(walk), value);
    for (const [k, v] of value) {
      step(".<key>", k);
      step(`.get(${describeKey(k)})`, v);
    }
  } else if (value instanceof Set) {
    if (proto !== Set.prototype) throw notPlain(pathOf(walk), value);
    for (const v of value) step(".<member>", v);
  } else {
    if (proto !== Object.prototype && proto !== null) throw notPlain(pathOf(walk), value);
    if (Object.getOwnPropertySymbols(value).length > 0) {
      throw new SerializationError(
        `${pathOf(walk)}: symbol-keyed properties cannot be serialized`,
      );
    }
    for (const k in value) {
      if (!Object.hasOwn(value, k)) continue;
      step(`.${k}`, (value as Record<string, unknown>)[k]);
    }
  }
  ancestors.delete(value);
  return shared;
}

function describeKey(key: unknown): string {
  return typeof key === "string" ? JSON.stringify(key) : String(key);
}

function notPlain(path: string, value: object): SerializationError {
  const name = Object.getPrototypeOf(value)?.constructor?.name ?? "unknown";
  return new SerializationError(
    `${path}: an instance of class ${name} cannot be serialized; ` +
      "pass plain data (objects, arrays, Map, Set, Date, BigInt, typed arrays)",
  );
}

/**
 * Encode a value to bytes.
 *
 * @param value Plain data: objects, arrays, strings, numbers, booleans, null, undefined,
 *   `Date`, `Map`, `Set`, `BigInt`, `RegExp`, errors, `ArrayBuffer` and typed arrays.
 * @param what What the value is, for error messages (e.g. `"args"`).
 * @param codec `"msgpack"` (the default), or `"json"` for JSON text people can read.
 * @returns The encoded bytes, starting with a format byte.
 * @throws {SerializationError} When the value holds a function, a symbol or a class instance.
 *
 * @example Round trip
 * ```ts
 * import { decode, encode } from "@omniq/omniq";
 * const value = { when: new Date(0), tags: new Set(["a"]), big: 2n ** 70n };
 * const back = decode(encode(value)) as typeof value;
 * console.assert(back.when.getTime() === 0 && back.tags.has("a") && back.big === 2n ** 70n);
 * ```
 */
export function encode(value: unknown, what = "value", codec: CodecName = "msgpack"): Uint8Array {
  const shared = typeof value === "object" && value !== null || typeof value === "function" ||
      typeof value === "symbol"
    ? inspect(value, { seen: new Set(), ancestors: new Set(), steps: [what] })
    : false;
  if (codec === "json" && !shared) {
    const text = new TextEncoder().encode(JSON.stringify(toJson(value)));
    const out = new Uint8Array(text.length + 1);
    out[0] = FORMAT_JSON;
    out.set(text, 1);
    return out;
  }
  const packr = shared ? clone : plain;
  let body: Uint8Array;
  try {
    body = packr.pack(value);
  } catch (error) {
    throw new SerializationError(`${what}: cannot be serialized: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const out = new Uint8Array(body.length + 1);
  out[0] = shared ? FORMAT_CLONE : FORMAT_MSGPACK;
  out.set(body, 1);
  return out;
}

/**
 * Decode bytes written by {@linkcode encode}.
 *
 * @param bytes The encoded value.
 * @returns The value.
 * @throws {SerializationError} When the bytes are not a value this codec wrote.
 *
 * @example Decoding
 * ```ts
 * import { decode, encode } from "@omniq/omniq";
 * console.assert((decode(encode([1, 2])) as number[]).length === 2);
 * ```
 */
export function decode(bytes: Uint8Array): unknown {
  const format = bytes[0];
  if (format === FORMAT_JSON) {
    try {
      return fromJson(JSON.parse(new TextDecoder().decode(bytes.subarray(1))));
    } catch (error) {
      throw new SerializationError(
        `cannot decode a stored JSON value: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }
  const packr = format === FORMAT_MSGPACK ? plain : format === FORMAT_CLONE ? clone : undefined;
  if (!packr) {
    throw new SerializationError(`cannot decode a value of unknown format ${format}`);
  }
  try {
    return packr.unpack(bytes.subarray(1));
  } catch (error) {
    throw new SerializationError(`cannot decode a stored value: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/** Plain data to JSON-safe data, with tags for what JSON lacks (checked by `inspect`). */
function toJson(value: unknown): unknown {
  switch (typeof value) {
    case "undefined":
      return { $undefined: true };
    case "bigint":
      return { $bigint: value.toString() };
    case "number":
      if (Object.is(value, -0)) return { $number: "-0" };
      return Number.isFinite(value) ? value : { $number: String(value) };
    case "object":
      break;
    default:
      return value;
  }
  if (value === null) return null;
  if (Array.isArray(value)) return value.map(toJson);
  if (value instanceof Date) return { $date: value.getTime() };
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [toJson(k), toJson(v)]) };
  if (value instanceof Set) return { $set: [...value].map(toJson) };
  if (value instanceof RegExp) return { $regexp: [value.source, value.flags] };
  if (value instanceof Error) {
    return { $error: { name: value.name, message: value.message, stack: value.stack } };
  }
  if (value instanceof ArrayBuffer) {
    return { $typed: "ArrayBuffer", data: [...new Uint8Array(value)] };
  }
  if (ArrayBuffer.isView(value)) {
    const name = value.constructor.name;
    const items = [...(value as unknown as Iterable<number | bigint>)];
    return { $typed: name, data: items.map((n) => typeof n === "bigint" ? n.toString() : n) };
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toJson(v);
  return Object.keys(out).some((k) => k.startsWith("$")) ? { $object: out } : out;
}

/** The inverse of {@linkcode toJson}. */
function fromJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJson);
  if (value === null || typeof value !== "object") return value;
  const v = value as Record<string, unknown>;
  const keys = Object.keys(v);
  if (keys.length === 1 || (keys.length === 2 && "$typed" in v)) {
    if ("$undefined" in v) return undefined;
    if ("$bigint" in v) return BigInt(v.$bigint as string);
    if ("$number" in v) return Number(v.$number);
    if ("$date" in v) return new Date(v.$date as number);
    if ("$map" in v) {
      return new Map((v.$map as [unknown, unknown][]).map(([k, x]) => [fromJson(k), fromJson(x)]));
    }
    if ("$set" in v) return new Set((v.$set as unknown[]).map(fromJson));
    if ("$regexp" in v) return new RegExp(...(v.$regexp as [string, string]));
    if ("$error" in v) {
      const e = v.$error as { name: string; message: string; stack?: string };
      const error = new Error(e.message);
      error.name = e.name;
      if (e.stack) error.stack = e.stack;
      return error;
    }
    if ("$object" in v) return fromPlain(v.$object as Record<string, unknown>);
    if ("$typed" in v) {
      const data = v.data as (number | string)[];
      if (v.$typed === "ArrayBuffer") return new Uint8Array(data as number[]).buffer;
      const ctor = TYPED_BY_NAME[v.$typed as string];
      if (!ctor) throw new SerializationError(`unknown typed array ${v.$typed}`);
      const big = v.$typed === "BigInt64Array" || v.$typed === "BigUint64Array";
      return ctor.from(big ? data.map((d) => BigInt(d)) : data as number[]);
    }
  }
  return fromPlain(v);
}

function fromPlain(v: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = fromJson(x);
  return out;
}
