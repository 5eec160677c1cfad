// node --test tests/js: the CPU pool's scheduling, with fake model workers (no wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import { ATTEMPTS, IN_FLIGHT, ModelPool, poolSize } from "../../www/pool.js";

/** A fake model worker: answers each slice after `delay` ms with packed = [z, z] (or crashes). */
class FakeWorker {
  constructor(i, log, { delay = 1, failInit = false } = {}) {
    Object.assign(this, { i, log, delay, failInit, queue: [], terminated: false, cancelledUpTo: 0 });
  }
  postMessage(m) {
    if (this.terminated) return;
    if (m.type === "init") {
      setTimeout(() => this.onmessage({ data: this.failInit ? { type: "init-failed", message: "no" } : { type: "ready", memBytes: 50 << 20 } }), 0);
    } else if (m.type === "slice") {
      assert.ok(m.grid instanceof Float32Array);
      this.queue.push(m);
      this.log.sent.push([this.i, m.z]);
      this.log.recon?.set(m.z, m.recon);
      if (this.queue.length === 1) this.#next();
    } else if (m.type === "cancel") {
      this.cancelledUpTo = m.run;
      this.queue = this.queue.slice(0, 1); // the one computing cannot be stopped
    }
  }
  #next() {
    setTimeout(() => {
      if (this.terminated || !this.queue.length) return;
      const job = this.queue.shift();
      this.log.maxQueue = Math.max(this.log.maxQueue, this.queue.length + 1);
      this.onmessage({ data: { type: "done", run: job.run, z: job.z, packed: new Float32Array([job.z, job.z]), ms: 1 } });
      if (this.queue.length) this.#next();
    }, this.delay);
  }
  crash() { this.onerror({ message: "RuntimeError: unreachable", preventDefault() {} }); }
  terminate() { this.terminated = true; this.queue = []; }
}

async function makePool(n, log, opts = {}) {
  const workers = [];
  const pool = new ModelPool((i) => (workers[i] = new FakeWorker(i, log, typeof opts === "function" ? opts(i) : opts)));
  const mems = await pool.grow(n, new Uint8Array(4), new Uint8Array(8));
  return { pool, workers, mems };
}

const newLog = () => ({ sent: [], maxQueue: 0 });
const prep = (z) => new Float32Array([z]);

test("pool size: one per core, capped by the memory budget and by ?workers", () => {
  const base = { instanceBytes: 100, budgetBytes: 1000, reserveBytes: 400 };
  assert.equal(poolSize({ ...base, cores: 2 }), 2);
  assert.equal(poolSize({ ...base, cores: 16 }), 6);
  assert.equal(poolSize({ ...base, cores: 2, requested: 4 }), 4);
  assert.equal(poolSize({ ...base, cores: 8, requested: 1 }), 1);
  assert.equal(poolSize({ ...base, cores: 8, reserveBytes: 990 }), 1, "never below one");
  assert.equal(poolSize({ ...base, cores: undefined }), 1);
});

test("every slice is finished exactly once, spread over the workers, at most IN_FLIGHT each", async () => {
  const log = newLog();
  const { pool, mems } = await makePool(3, log);
  assert.deepEqual(mems, [50 << 20, 50 << 20, 50 << 20]);
  const finished = [];
  const zs = [...Array(40).keys()];
  const r = await pool.run(zs, { prepare: prep, finish: (z, packed) => { assert.equal(packed[0], z); finished.push(z); } });
  assert.deepEqual(r, { done: 40, left: [], failed: [] });
  assert.deepEqual([...finished].sort((a, b) => a - b), zs);
  assert.deepEqual(new Set(log.sent.map(([i]) => i)), new Set([0, 1, 2]));
  assert.ok(log.maxQueue <= IN_FLIGHT, `queue ${log.maxQueue}`);
});

test("inFlight sends a whole short run at once, spread evenly (the owner is busy meanwhile)", async () => {
  const log = newLog();
  const { pool } = await makePool(2, log, { delay: 5 });
  const r = await pool.run([...Array(10).keys()], { prepare: prep, finish: () => {}, inFlight: 5 });
  assert.deepEqual(r, { done: 10, left: [], failed: [] });
  // Five to each worker, all queued before its first answer (a queue of five).
  assert.equal(log.sent.length, 10);
  assert.deepEqual([0, 1].map((i) => log.sent.filter(([w]) => w === i).length), [5, 5]);
  assert.equal(log.maxQueue, 5);
});

test("each slice goes out saying whether its reconstruction is computed (by default: yes)", async () => {
  const log = { ...newLog(), recon: new Map() };
  const { pool } = await makePool(2, log);
  await pool.run([...Array(12).keys()], { prepare: prep, finish: () => {}, reconOf: (z) => z % 4 === 0 });
  assert.deepEqual([...log.recon.entries()].sort((a, b) => a[0] - b[0]), [...Array(12).keys()].map((z) => [z, z % 4 === 0]));
  log.recon.clear();
  await pool.run([20, 21], { prepare: prep, finish: () => {} });
  assert.deepEqual([...log.recon.values()], [true, true]);
});

test("a worker that dies mid-run loses only its in-flight slices, retried once elsewhere", async () => {
  const log = newLog();
  const { pool, workers } = await makePool(2, log, { delay: 2 });
  const finished = [];
  let crashed = false;
  const r = await pool.run([...Array(30).keys()], {
    prepare: prep,
    finish: (z) => finished.push(z),
    onDispatch: (z, i, sent) => { if (!crashed && sent === 7 && i === 0) { crashed = true; setTimeout(() => workers[0].crash(), 0); } },
  });
  assert.ok(crashed, "the test crashed a worker");
  assert.equal(pool.size, 1);
  assert.ok(workers[0].terminated, "the dead worker is terminated");
  assert.deepEqual(r.left, []);
  assert.deepEqual(r.failed, []);
  assert.deepEqual([...finished].sort((a, b) => a - b), [...Array(30).keys()], "each slice exactly once");
  const lost = log.sent.filter(([i]) => i === 0).map(([, z]) => z).filter((z) => log.sent.some(([i, z2]) => i === 1 && z2 === z));
  assert.ok(lost.length >= 1, "the crashed worker's slices went to the other one");
});

test("a slice that kills every worker it meets is given up after ATTEMPTS tries; the rest come back as left", async () => {
  const log = newLog();
  const { pool, workers } = await makePool(3, log, { delay: 1 });
  const r = await pool.run([0, 1, 2, 3, 4, 5], {
    prepare: (z) => {
      if (z === 3) setTimeout(() => { for (const w of workers) if (!w.terminated && w.queue.some((j) => j.z === 3)) w.crash(); }, 0);
      return prep(z);
    },
    finish: () => {},
  });
  assert.equal(log.sent.filter(([, z]) => z === 3).length, ATTEMPTS);
  assert.deepEqual(r.failed.map((f) => f.z), [3]);
  assert.equal(r.done + r.left.length + r.failed.length, 6);
  assert.equal(pool.size, 3 - ATTEMPTS);
});

test("with no worker left, the run ends and hands back what is left", async () => {
  const log = newLog();
  const { pool, workers } = await makePool(1, log, { delay: 5 });
  setTimeout(() => workers[0].crash(), 7);
  const r = await pool.run([...Array(10).keys()], { prepare: prep, finish: () => {} });
  assert.equal(pool.size, 0);
  assert.ok(r.done >= 1 && r.done < 10, `done ${r.done}`);
  assert.equal(r.done + r.left.length + r.failed.length, 10);
});

test("cancel ends the run at once; late answers are ignored and the pool runs again", async () => {
  const log = newLog();
  const { pool } = await makePool(2, log, { delay: 3 });
  const finished = [];
  const running = pool.run([...Array(20).keys()], { prepare: prep, finish: (z) => { finished.push(z); if (finished.length === 3) pool.cancel(); } });
  const r = await running;
  assert.equal(r.done, 3);
  const sentBefore = log.sent.length;
  await new Promise((res) => setTimeout(res, 30));
  assert.equal(finished.length, 3, "nothing finished after cancel");
  assert.ok(log.sent.length === sentBefore, "nothing sent after cancel");
  const again = await pool.run([100, 101], { prepare: prep, finish: (z) => finished.push(z) });
  assert.equal(again.done, 2);
  assert.deepEqual(finished.slice(3).sort(), [100, 101]);
});

test("a worker that fails to start is dropped", async () => {
  const log = newLog();
  const { pool, mems } = await makePool(2, log, (i) => ({ failInit: i === 1 }));
  assert.equal(mems.length, 1);
  assert.equal(pool.size, 1);
});
