/**
 * What the thread and process pools share: rebuilding a handler's error from its stored
 * form, so retries, permanent failures and messages work as in the async worker.
 *
 * @module
 */

import { SerializationError, UnknownTaskError } from "../src/errors.ts";
import type { SerializedError } from "../src/types.ts";

/** An error from a pool thread or child, with its name, message and stack kept. */
export function reviveError(error: SerializedError): Error {
  const out = error.name === "UnknownTaskError"
    ? new UnknownTaskError(error.message)
    : error.name === "SerializationError"
    ? new SerializationError(error.message)
    : new Error(error.message);
  out.name = error.name;
  if (error.stack) out.stack = error.stack;
  return out;
}
