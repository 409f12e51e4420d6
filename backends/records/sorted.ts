/**
 * Sorted index entry names of one directory, the way the record engines keep an index in
 * memory: the `memory:` engine's whole index, and the `file:` engine's listings of its index
 * directories between two listings of the disk. Names sort as JavaScript strings do
 * (`Array.prototype.sort`), as a sorted directory listing does.
 *
 * @module
 */

/** Sorted index entry names of one directory; cheap to add at the end and take from the front. */
export class SortedNames {
  #a: string[];
  /** Names before this position were taken from the front and are no longer held. */
  #head = 0;

  /** @param sorted Names to start with, already sorted (kept, not copied). */
  constructor(sorted: string[] = []) {
    this.#a = sorted;
  }

  /** How many names it holds. */
  get size(): number {
    return this.#a.length - this.#head;
  }

  #find(name: string): number {
    let lo = this.#head, hi = this.#a.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#a[mid] < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Add a name (once). */
  add(name: string): void {
    const a = this.#a;
    if (a.length === this.#head || a[a.length - 1] < name) {
      a.push(name);
      return;
    }
    const i = this.#find(name);
    if (a[i] !== name) a.splice(i, 0, name);
  }

  /** Delete a name; whether it was held. */
  delete(name: string): boolean {
    const a = this.#a;
    const i = a[this.#head] === name ? this.#head : this.#find(name);
    if (i >= a.length || a[i] !== name) return false;
    if (i !== this.#head) a.splice(i, 1);
    else if (++this.#head === a.length) {
      this.#a = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > a.length) {
      this.#a = a.slice(this.#head);
      this.#head = 0;
    }
    return true;
  }

  /** The first `limit` names, in order; with `after`, of the names that sort after it. */
  first(limit?: number, after?: string): string[] {
    let i = this.#head;
    if (after !== undefined) {
      i = this.#find(after);
      if (this.#a[i] === after) i++;
    }
    return this.#a.slice(i, limit === undefined ? undefined : i + limit);
  }
}
