/**
 * A binary min-heap of `[key, id]` pairs. The memory engine no longer indexes with it (its
 * tasks live in the shared record queue's sorted index entries, `space.ts`); it stays for
 * code that imported it from `@omniq/omniq/memory`.
 *
 * @module
 */

/**
 * A binary min-heap of `[key, id]` (a due time, or a ready-order key).
 *
 * @deprecated The memory engine no longer uses it; kept for code that imported it.
 */
export class KeyHeap {
  #heap: [number, string][] = [];
  /** How many entries it holds. */
  get size(): number {
    return this.#heap.length;
  }
  /** Add an entry. */
  push(time: number, id: string): void {
    const h = this.#heap;
    h.push([time, id]);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p][0] <= h[i][0]) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  /** The entry with the smallest key, left in place. */
  peek(): [number, string] | undefined {
    return this.#heap[0];
  }
  /** Take the entry with the smallest key. */
  pop(): [number, string] | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && h[l][0] < h[m][0]) m = l;
        if (r < h.length && h[r][0] < h[m][0]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}
