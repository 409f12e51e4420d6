/**
 * The `file:` engine's journal: the list of a commit's changes, written to
 * `meta/journal.json` before they are made and deleted after, so a holder of the lock that
 * dies part way leaves it for the next holder to finish. Every change can be made twice
 * safely; an event append made again keeps the log's whole lines that are not among its
 * events, then adds them all.
 *
 * @module
 */

import type { StoredEvent } from "../../src/backend.ts";
import { fromBase64, jsonBytes, parseJson, toBase64 } from "../../src/kit/encoding.ts";
import { isConditional, type Storage } from "./storage.ts";

/**
 * One storage change of a commit: write (`w`), delete (`x`), create when absent (`c`), or
 * append events to a log (`a`). On a {@linkcode ConditionalStorage}, a write or delete may
 * carry `v`, the version the step read (`null`: the key was absent): it is made only on that
 * version, so it is made at most once however often the journal is replayed, and a replay
 * that comes after newer changes cannot undo them.
 */
export type Op =
  | { w: string; d: Uint8Array; v?: string | null }
  | { x: string; v?: string | null }
  | { c: string; d: Uint8Array }
  | { a: string; events: StoredEvent[] };

/** The journal's name: a commit's changes, written before they are made. */
export const JOURNAL = "meta/journal.json";

/** Events as JSON lines. */
export function eventLines(events: StoredEvent[]): Uint8Array {
  return new TextEncoder().encode(events.map((e) => JSON.stringify(e) + "\n").join(""));
}

/** Make one change (again, when replaying: every change can be made twice). */
export async function applyOp(st: Storage, op: Op, replay: boolean): Promise<void> {
  if (isConditional(st)) {
    if ("w" in op && op.v !== undefined) {
      // A failed precondition: made already (by this commit or a replay of it), or stale.
      await st.putIf(op.w, op.d, op.v);
      return;
    }
    if ("x" in op && op.v !== undefined) {
      if (op.v !== null) await st.deleteIf(op.x, op.v);
      return;
    }
    if ("a" in op) {
      // An object store rewrites a blob to append anyway: always the idempotent way, on
      // the version read, so the holder and a replay of its journal never add twice.
      for (;;) {
        const old = await st.readVersioned(op.a);
        const bytes = withEvents(old?.data, op.events);
        if (await st.putIf(op.a, bytes, old?.version ?? null) !== undefined) return;
      }
    }
  }
  if ("w" in op) await st.writeAtomic(op.w, op.d);
  else if ("x" in op) await st.delete(op.x);
  else if ("c" in op) await st.createIfAbsent(op.c, op.d);
  else if (!replay) await st.append(op.a, eventLines(op.events));
  else await st.writeAtomic(op.a, withEvents(await st.read(op.a), op.events));
}

/**
 * A log's bytes with `events` at its end once each: the log may hold some of them, or a
 * torn line, so keep its whole lines that are not among them, then add them all.
 */
function withEvents(log: Uint8Array | undefined, events: StoredEvent[]): Uint8Array {
  const ids = new Set(events.map((e) => e.id));
  const lines = new TextDecoder().decode(log ?? new Uint8Array(0)).split("\n");
  lines.pop(); // the text after the last newline: empty, or a torn line
  const kept = lines.filter((line) => {
    try {
      return !ids.has((JSON.parse(line) as StoredEvent).id);
    } catch {
      return true; // a foreign line stays (the reader reports it)
    }
  });
  const head = new TextEncoder().encode(kept.map((line) => line + "\n").join(""));
  return concat(head, eventLines(events));
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** A journal's bytes. */
export function encodeJournal(ops: Op[]): Uint8Array {
  return jsonBytes(ops.map((op) => "d" in op ? { ...op, d: toBase64(op.d) } : op));
}

/** The changes of a journal (a foreign file throws). */
export function decodeJournal(bytes: Uint8Array): Op[] {
  const raw = parseJson(bytes);
  if (!Array.isArray(raw)) throw new Error("not a journal");
  return raw.map((op) => {
    if (typeof op?.w === "string" || typeof op?.c === "string") {
      return { ...op, d: fromBase64(op.d) } as Op;
    }
    if (typeof op?.x === "string") return op as Op;
    if (typeof op?.a === "string" && Array.isArray(op.events)) return op as Op;
    throw new Error("not a journal entry");
  });
}
