// The journal of a `nats:` step that writes several keys: what it keeps, and how a journal
// too large for one message is found again from its parts.

import { parseJson } from "../../src/kit/encoding.ts";

/**
 * One change of a step, as its journal keeps it (values are the JSON text stored). `create`,
 * `update` and `remove` of task records are fenced by revision; the rest are plain writes.
 */
export type JournalOp =
  | { op: "put"; bucket: "tasks" | "results"; key: string; value: string }
  | { op: "del"; bucket: "tasks" | "results"; key: string }
  | { op: "create"; key: string; value: string }
  | { op: "update"; key: string; value: string; rev: number }
  | { op: "remove"; key: string; rev: number }
  | { op: "event"; subject: string; id: string; value: string };

/**
 * The changes of a step that writes several keys, written before them. The step's last write
 * is the sequence record, from revision `seqFrom` to `seq`: while the sequence record is
 * still at `seqFrom`, the step is unfinished and the next holder of the lock replays it.
 */
export interface Journal {
  seqFrom: number;
  seq: string;
  ops: JournalOp[];
}

/** The parts a journal was split into, when its message only names them. */
export function journalParts(bytes: Uint8Array): { id: string; n: number } | undefined {
  try {
    const raw = parseJson(bytes) as { parts?: { id?: unknown; n?: unknown } };
    const p = raw?.parts;
    if (p && typeof p.id === "string" && typeof p.n === "number") return { id: p.id, n: p.n };
  } catch {
    // Not a journal header: the reader reports it.
  }
  return undefined;
}
