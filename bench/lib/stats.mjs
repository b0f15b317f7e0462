// Small statistics helpers. Latencies are kept raw (a growable Float64Array of milliseconds):
// a 5 s round at ~10k queries/s is well under a megabyte.

/** Growable array of latency samples in milliseconds. */
export class Samples {
  #data = new Float64Array(1 << 14);
  #length = 0;

  push(value) {
    if (this.#length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.#length++] = value;
  }

  get length() {
    return this.#length;
  }

  /** A sorted copy of the samples. */
  sorted() {
    return this.#data.slice(0, this.#length).sort();
  }
}

/** Nearest-rank percentile of an ascending array (`p` in 0..100). */
export function percentile(sortedValues, p) {
  if (sortedValues.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sortedValues.length);
  return sortedValues[Math.min(sortedValues.length - 1, Math.max(0, rank - 1))];
}

export function median(values) {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export function min(values) {
  return values.reduce((m, v) => Math.min(m, v), Infinity);
}

export function max(values) {
  return values.reduce((m, v) => Math.max(m, v), -Infinity);
}

/** Rounds for display and JSON: 3 significant decimals below 10, fewer above. */
export function round(value, digits = value < 10 ? 3 : value < 1000 ? 1 : 0) {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
