// The Lua code of the Redis engine. Every multi-step change of the queue is one script,
// so it is atomic on the server: no client ever reads a task and then writes it back.
//
// The code is `LIB` (the shared helpers, fragments.ts) and one body per operation, each in
// its own file here with a header naming its ARGV and its reply. On Redis 7 and later
// it is loaded once as a function library (`FUNCTION LOAD`; each body a function, called
// with `FCALL`), so the helpers are built once, not on every call; older servers run each
// body as a script of its own (`EVALSHA` of `LIB` and the body). Either way a body starts
// with `begin(ARGV)`, which sets the per-call state (prefix, flags, clock, outputs).
//
// The arguments all come in ARGV (no KEYS): the scripts build their key names from the
// prefix, which is why the engine runs on one Redis node (or a cluster whose prefix holds
// a hash tag, putting every key in one slot). Common ARGV:
//   ARGV[1] the key prefix, e.g. "omniq:"
//   ARGV[2] two flags, "11": results attached, events attached (write them here)
//   ARGV[3] the events stream's MAXLEN (approximate trimming)
//   ARGV[4..] the script's own arguments, listed in its header.
// Every script that changes tasks returns an array from `finish`:
//   [ x JSON, results JSON, event JSON, event stream id, event JSON, … ]
// where x is the script's own output, the results are the result records produced that the
// engine did not store itself, and an event's id is '' when the events are not attached
// (a refusal before any change may return one JSON document { x } instead).
//
// Numbers: Lua formats numbers with 14 significant digits when concatenating, and
// redis.call turns a number argument into text with a slow "%.17g" printf on every call, so
// the scripts pass integers to redis.call as strings made by `int` ("%d", exact) or taken
// from ARGV, and never concatenate a ready-order score.

import { ENQUEUE } from "./enqueue.ts";
import { CLAIM } from "./claim.ts";
import { RENEW } from "./renew.ts";
import { PROGRESS } from "./progress.ts";
import { COMPLETE } from "./complete.ts";
import { FAIL } from "./fail.ts";
import { CORRUPT } from "./corrupt.ts";
import { CANCEL } from "./cancel.ts";
import { RETRY } from "./retry.ts";
import { SWEEP } from "./sweep.ts";
import { NEXT_DUE } from "./next_due.ts";
import { LIST } from "./list.ts";
import { PUT_SCHEDULE } from "./put_schedule.ts";
import { DELETE_SCHEDULE } from "./delete_schedule.ts";
import { PAUSE_SCHEDULE } from "./pause_schedule.ts";
import { PAUSE_QUEUE } from "./pause_queue.ts";
import { FIRE_TICK } from "./fire_tick.ts";
import { PUT_RESULTS } from "./put_results.ts";
import { DELETE_RESULTS } from "./delete_results.ts";
import { SWEEP_RESULTS } from "./sweep_results.ts";
import { APPEND_EVENTS } from "./append_events.ts";
import { TRIM_EVENTS } from "./trim_events.ts";
import { LIB } from "./fragments.ts";

export { CLAIM_FIELDS, TASK_ARGS } from "./fragments.ts";

/** The body of each operation, by name. */
const BODIES = {
  enqueue: ENQUEUE,
  claim: CLAIM,
  renew: RENEW,
  progress: PROGRESS,
  complete: COMPLETE,
  fail: FAIL,
  corrupt: CORRUPT,
  cancel: CANCEL,
  retry: RETRY,
  sweep: SWEEP,
  nextDue: NEXT_DUE,
  list: LIST,
  putSchedule: PUT_SCHEDULE,
  deleteSchedule: DELETE_SCHEDULE,
  pauseSchedule: PAUSE_SCHEDULE,
  pauseQueue: PAUSE_QUEUE,
  fireTick: FIRE_TICK,
  putResults: PUT_RESULTS,
  deleteResults: DELETE_RESULTS,
  sweepResults: SWEEP_RESULTS,
  appendEvents: APPEND_EVENTS,
  trimEvents: TRIM_EVENTS,
} as const;

/** An operation's name. */
export type ScriptName = keyof typeof BODIES;

/** The operations' names. */
export const SCRIPT_NAMES = Object.keys(BODIES) as ScriptName[];

/**
 * The script of each operation, for servers without functions (`EVALSHA`): `LIB` and the
 * body, run as one chunk on every call.
 */
export const SCRIPTS = Object.fromEntries(
  SCRIPT_NAMES.map((name) => [name, `${LIB}begin(ARGV)\n${BODIES[name]}`]),
) as Record<ScriptName, string>;

/**
 * The whole engine as one function library (Redis 7 and later): `LIB` runs once when the
 * library loads, and each body is the function `<library>_<operation>`.
 *
 * @param library The library's name; it should change whenever the code does (the engine
 *   names it after a hash of {@linkcode SCRIPTS}), so versions never replace each other.
 * @returns The code for `FUNCTION LOAD`.
 */
export function functionLibrary(library: string): string {
  const bodies = SCRIPT_NAMES.map((name) =>
    `redis.register_function('${library}_${name}', function(_, ARGV)\nbegin(ARGV)\n${
      BODIES[name]
    }\nend)\n`
  );
  return `#!lua name=${library}\n${LIB}\n${bodies.join("")}`;
}
