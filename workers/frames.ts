/**
 * The process pool's wire format, used by both ends: a 4-byte big-endian length, then a
 * codec-encoded message.
 *
 * @module
 */

import { decode, encode } from "../src/codec.ts";

/** One message as a frame. */
export function encodeFrame(message: unknown): Uint8Array {
  const body = encode(message, "frame");
  const frame = new Uint8Array(body.length + 4);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  return frame;
}

/** The messages of a byte stream of frames, in order, as they complete. */
export async function* readFrames(stream: AsyncIterable<Uint8Array>): AsyncGenerator<unknown> {
  let buffer = new Uint8Array(0);
  for await (const chunk of stream) {
    const joined = new Uint8Array(buffer.length + chunk.length);
    joined.set(buffer);
    joined.set(chunk, buffer.length);
    buffer = joined;
    while (buffer.length >= 4) {
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(0);
      if (buffer.length < 4 + length) break;
      yield decode(buffer.slice(4, 4 + length));
      buffer = buffer.slice(4 + length);
    }
  }
}
