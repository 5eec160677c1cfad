// The CPU worker pool: several model workers, each its own wasm instance and copy of the
// weights, fed model inputs by the worker that owns the volume. No DOM and no wasm here, so the
// scheduling is unit-tested with fake workers (tests/js/pool.test.mjs).
//
// Messages to a model worker:   {type: "init", config, weights} | {type: "slice", run, z, grid, recon}
//                               | {type: "cancel", run} | {type: "decode", id, name, bytes}
// Messages from a model worker: {type: "ready", memBytes} | {type: "done", run, z, packed, ms}
//                               | {type: "failed", run, z, message} | {type: "init-failed", message}
//                               | {type: "decoded", id, pixels} (pixels: Int16Array, or null)

/** In-flight slices per worker: one computing, one waiting, so a worker never idles. */
export const IN_FLIGHT = 2;
/** How often a slice is tried before the run gives it up (a worker that died holding it). */
export const ATTEMPTS = 2;

/**
 * How many model workers to start: one per core (the owning worker only prepares and finishes
 * slices), at most `requested` when given, and no more than fit in what the tab can spend after
 * the largest volume we plan for.
 * @param {{cores: number, requested?: number, instanceBytes: number, budgetBytes: number, reserveBytes: number}} o
 */
export function poolSize({ cores, requested, instanceBytes, budgetBytes, reserveBytes }) {
  const fit = Math.floor((budgetBytes - reserveBytes) / Math.max(1, instanceBytes));
  const want = requested > 0 ? requested : Math.max(1, cores || 1);
  return Math.max(1, Math.min(want, fit, 16));
}

export class ModelPool {
  /** @param {(i: number) => Worker} spawn makes model worker `i` (a Worker or a test double). */
  constructor(spawn) {
    this.spawn = spawn;
    this.workers = [];
    this.runToken = 0;
    this.active = null; // the run in progress: its handlers
    this.decodeId = 0;
  }

  /** Live workers. */
  get size() { return this.workers.filter((w) => w.alive).length; }

  /**
   * Start `n` workers more with the model bytes; resolves with the ready ones' memory (bytes).
   * A worker that fails to start is dropped (the caller sees it in the count).
   */
  async grow(n, config, weights) {
    const started = [];
    for (let k = 0; k < n; k++) {
      const i = this.workers.length;
      const w = { i, alive: false, inflight: new Map(), decoding: new Map(), worker: this.spawn(i), memBytes: 0 };
      this.workers.push(w);
      started.push(new Promise((resolve) => {
        w.worker.onmessage = (ev) => {
          const m = ev.data;
          if (m.type === "ready") { w.alive = true; w.memBytes = m.memBytes || 0; resolve(w); }
          else if (m.type === "init-failed") { this.#kill(w); resolve(null); }
          else if (m.type === "decoded") { w.decoding.get(m.id)?.(m.pixels ?? null); w.decoding.delete(m.id); }
          else this.#onResult(w, m);
        };
        w.worker.onerror = (ev) => {
          ev?.preventDefault?.();
          const wasAlive = w.alive;
          this.#kill(w, ev?.message || "the worker crashed");
          if (!wasAlive) resolve(null);
        };
        w.worker.postMessage({ type: "init", config: config.slice(), weights: weights.slice() });
      }));
    }
    return (await Promise.all(started)).filter(Boolean).map((w) => w.memBytes);
  }

  /** Drop a worker: whatever it held goes back to the run's queue (once per slice). */
  #kill(w, why) {
    w.alive = false;
    try { w.worker.terminate(); } catch { /* already gone */ }
    const lost = [...w.inflight.keys()];
    w.inflight.clear();
    for (const settle of w.decoding.values()) settle(null); // the caller decodes those itself
    w.decoding.clear();
    if (lost.length && this.active) this.active.lost(lost, why);
  }

  #onResult(w, m) {
    if (!w.inflight.has(m.z) || m.run !== this.runToken || !this.active) return; // stale
    w.inflight.delete(m.z);
    if (m.type === "done") this.active.done(m.z, m.packed, m.ms);
    else this.#kill(w, m.message); // a trap leaves the instance unusable: retire it
    if (this.active) this.active.pump();
  }

  /**
   * Decode one DICOM file in the live worker with the fewest files pending (`bytes`, an
   * ArrayBuffer-backed Uint8Array, is transferred). Resolves with its pixels (Int16Array) or
   * null: no worker, a file it could not decode, or a worker that died meanwhile; the caller
   * then decodes it itself, so no outcome here changes what is loaded.
   */
  decode(name, bytes) {
    const live = this.workers.filter((w) => w.alive);
    if (!live.length) return Promise.resolve(null);
    const w = live.reduce((a, b) => (b.decoding.size < a.decoding.size ? b : a));
    const id = ++this.decodeId;
    return new Promise((resolve) => {
      w.decoding.set(id, resolve);
      w.worker.postMessage({ type: "decode", id, name, bytes }, [bytes.buffer]);
    });
  }

  /** Stop the run in progress: no more slices go out, queued ones are dropped by the workers. */
  cancel() {
    if (!this.active) return;
    const token = this.runToken;
    for (const w of this.workers) if (w.alive) { w.inflight.clear(); w.worker.postMessage({ type: "cancel", run: token }); }
    this.active.finish();
  }

  /**
   * Analyse slices `zs`. `prepare(z)` gives the model input (a Float32Array), `finish(z,
   * packed, ms)` takes the outputs (both run here, in the owning worker). Resolves with
   * `{done, left, failed}`: `left` are slices never finished because the run was cancelled or
   * no worker is left (the caller runs them itself); `failed` were tried `ATTEMPTS` times.
   * `options.onDispatch(z, workerIndex, count)` sees every slice sent (tests kill workers with it);
   * `options.reconOf(z)` says whether slice z's reconstruction is computed (default: yes);
   * `options.inFlight` how many slices a worker may hold (default IN_FLIGHT; more when the
   * owning worker will be busy and cannot hand out the next slice soon).
   */
  run(zs, { prepare, finish, onDispatch = () => {}, reconOf = () => true, inFlight = IN_FLIGHT }) {
    if (this.active) throw new Error("the pool is already running");
    const token = ++this.runToken;
    const queue = [...zs];
    const attempts = new Map();
    const failed = [];
    let done = 0, sent = 0;
    return new Promise((resolve, reject) => {
      const end = (error) => {
        if (this.active !== handlers) return;
        this.active = null;
        const left = [...queue];
        for (const w of this.workers) { for (const z of w.inflight.keys()) left.push(z); w.inflight.clear(); }
        if (error) reject(error); else resolve({ done, left, failed });
      };
      const handlers = {
        done: (z, packed, ms) => {
          done++;
          try { finish(z, packed, ms); } catch (e) { end(e); }
        },
        lost: (lost, why) => {
          for (const z of lost) {
            if ((attempts.get(z) || 0) < ATTEMPTS) queue.unshift(z);
            else failed.push({ z, why });
          }
          handlers.pump();
        },
        finish: () => end(),
        pump: () => {
          if (this.active !== handlers) return;
          const live = this.workers.filter((w) => w.alive);
          for (let more = true; more && queue.length;) {
            more = false;
            for (const w of live) {
              if (!queue.length || !w.alive || w.inflight.size >= inFlight) continue;
              const z = queue.shift();
              let grid;
              try { grid = prepare(z); } catch (e) { end(e); return; }
              attempts.set(z, (attempts.get(z) || 0) + 1);
              w.inflight.set(z, true);
              w.worker.postMessage({ type: "slice", run: token, z, grid, recon: reconOf(z) }, [grid.buffer]);
              onDispatch(z, w.i, ++sent);
              more = true;
            }
          }
          const busy = this.workers.some((w) => w.alive && w.inflight.size);
          if (!busy && (!queue.length || !this.workers.some((w) => w.alive))) end();
        },
      };
      this.active = handlers;
      handlers.pump();
    });
  }
}
