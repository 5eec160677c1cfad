// One model worker of the CPU pool (see pool.js for its messages): its own wasm instance and
// copy of the weights; model inputs in, packed model outputs out; and DICOM files of a series
// being read in, their pixels out. It keeps its own queue and
// yields between slices, so a "cancel" drops what is waiting instead of queueing behind it.
import init, { ModelRunner, decode_dicom_file } from "../pkg/ctscreen.js";

let runner = null;
let wasm = null;
let queue = [];
let pumping = false;
let cancelledUpTo = 0;

async function pump() {
  if (pumping) return;
  pumping = true;
  while (queue.length) {
    const job = queue.shift();
    if (job.run <= cancelledUpTo) continue;
    const t0 = performance.now();
    try {
      const packed = await runner.predict(job.grid, job.recon !== false);
      postMessage({ type: "done", run: job.run, z: job.z, packed, ms: performance.now() - t0 }, [packed.buffer]);
    } catch (e) {
      // A wasm trap or out-of-memory leaves this instance unusable: the pool retires it.
      postMessage({ type: "failed", run: job.run, z: job.z, message: String(e?.message ?? e) });
      queue = [];
      break;
    }
    await new Promise((r) => setTimeout(r, 0));
  }
  pumping = false;
}

async function start(m) {
  try {
    wasm = await init();
    runner = await ModelRunner.create(m.config, m.weights);
    postMessage({ type: "ready", memBytes: wasm.memory.buffer.byteLength });
  } catch (e) {
    postMessage({ type: "init-failed", message: String(e?.message ?? e) });
  }
}

// Not async: an error thrown here must reach the pool as the worker's "error" event.
onmessage = (ev) => {
  const m = ev.data;
  if (m.type === "init") {
    start(m);
  } else if (m.type === "slice") {
    queue.push(m);
    pump();
  } else if (m.type === "decode") {
    // A file of a series being read (the owning worker decodes whatever comes back null).
    let pixels = null;
    try { pixels = decode_dicom_file(m.name, m.bytes) ?? null; } catch { /* decoded again there, with its error */ }
    postMessage({ type: "decoded", id: m.id, pixels }, pixels ? [pixels.buffer] : []);
  } else if (m.type === "cancel") {
    cancelledUpTo = Math.max(cancelledUpTo, m.run);
    queue = queue.filter((j) => j.run > cancelledUpTo);
  } else if (m.type === "crash") {
    // Test hook (`?crashworker=K` on the page): an uncaught error, as a trap outside the
    // model call would raise; the pool must retry what this worker held.
    throw new Error("model worker crashed on request (test hook)");
  }
};
