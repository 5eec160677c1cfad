// The inference worker: owns the wasm module, the current volume and its results. On the GPU
// it runs the model itself, in batches; on the CPU it feeds a pool of model workers (pool.js),
// one per core, and runs the model itself only if the pool cannot start.
// In:  {type: "init", options: {backend: "auto"|"cpu"|"webgpu", model, workers, batch, crashworker, reconEvery, quick, deviceMemory}} (first)
//      | {type: "load", files: [File]} | {type: "demo"} | {type: "cancel"} | {type: "view", z}
//      | {type: "export-mask"} | {type: "export-seg"}
//      | {type: "load", files, followup: true} (keeps the analysed scan as the baseline)
//      | {type: "swap"} | {type: "close-compare"} | {type: "view", z, which: "baseline"}
//      | {type: "mpr", id, gen} (the HU, lesion and lung NIfTI copies for the multiplanar viewer)
// Out: {type: "status"|"ready"|"pool"|"volume"|"slice"|"view"|"report"|"comparison"|"mask"|"mpr"|"error"}.
// The volume lives here only: the page asks for the slices it draws ("view").
import init, { Analyzer } from "../pkg/ctscreen.js";
import { coarseToFine, firstStep } from "./schedule.js";
import { ModelPool, poolSize } from "./pool.js";

let analyzer = null;
let options = {};
let modelBytes = null;
/** Slices per WebGPU dispatch (`?batch=N` in the page's URL overrides it). */
const GPU_BATCH = 4;
/** What the tab may spend, and what the largest volume we plan for (512²×600) takes of it:
 * 2 B int16 HU + 1 B lung + 1 B lesion labels (exports, reports) here, plus the files while
 * they are read. */
const TAB_BUDGET = 2 * 1024 ** 3;
const BYTES_PER_VOXEL = 5;
const VOLUME_RESERVE = BYTES_PER_VOXEL * 512 * 512 * 600;
/** The largest volume a load may make, in voxels: what half of this device's memory holds at
 * BYTES_PER_VOXEL (navigator.deviceMemory, GiB, rounded down by the browser; 4 when unknown),
 * and never more than a 32-bit wasm memory (4 GiB) holds beside the model. Above it a series
 * is refused from its headers, with its size, before any pixel is decoded. */
function maxVoxels() {
  const gib = Number(options.deviceMemory) > 0 ? Number(options.deviceMemory) : 4;
  return Math.floor(Math.min(gib / 2, 3) * 1024 ** 3 / BYTES_PER_VOXEL);
}
/** The multiplanar viewer's copy of a scan, in voxels: NiiVue holds it several times over (its
 * own RAS copy, float and RGBA textures, in RAM on a software GPU: about 40 bytes a voxel
 * measured on a 512²×600 series, BENCHMARKS.md), so a 512²×600 series is shown averaged over 5×5 in-plane
 * blocks (3.5 mm) in the coronal, sagittal and 3-D panes, a 512²×300 one over 4×4; the axial
 * pane always draws the full slice. */
const MPR_MAX_VOXELS = 8 * 1024 * 1024;
let runId = 0; // bumped by every new load or cancel; a running loop stops when it changes
let loadId = 0; // the run of the volume loaded last
let pool = null; // the CPU pool once started (null: not started or not possible)
let poolStart = null;
let wasm = null; // the wasm module's exports once loaded

async function fetchBytes(path) {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`could not load ${path} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

let optionsReceived;
const optionsReady = new Promise((r) => { optionsReceived = r; });

async function load() {
  await optionsReady;
  postMessage({ type: "status", text: "Loading the analysis engine…" });
  wasm = await init();
  postMessage({ type: "status", text: "Loading the model weights…" });
  // Only the shipped models: the default (v2) and v1 for comparisons.
  const dir = `models/${options.model === "ctscreen-v1" ? "ctscreen-v1" : "ctscreen-v2"}`;
  const [config, weights] = await Promise.all([
    fetchBytes(`${dir}/config.json`),
    fetchBytes(`${dir}/model.q8`),
  ]);
  modelBytes = { config, weights };
  const preferGpu = options.backend !== "cpu" && "gpu" in navigator && navigator.gpu !== undefined;
  const t0 = performance.now();
  postMessage({ type: "status", text: preferGpu ? "Preparing the GPU (first use compiles shaders; this can take a while)…" : "Preparing the CPU backend…" });
  analyzer = await Analyzer.create(config.slice(), weights.slice(), preferGpu);
  // A GPU adapter slower than the CPU (software rendering) is given up, and the page says why;
  // `?backend=webgpu` keeps WebGPU whatever it costs (tests, comparisons).
  let race = null;
  if (analyzer.backend() === "webgpu" && options.backend !== "webgpu") {
    postMessage({ type: "status", text: "Timing the GPU against the CPU (one slice each)…" });
    race = await analyzer.race_cpu();
  }
  // On the CPU path the pool starts before "ready", so everything is fetched before any file
  // is dropped (and precached for offline use).
  if (analyzer.backend() !== "webgpu") await startPool(wasm.memory.buffer.byteLength);
  postMessage({
    type: "ready",
    backend: analyzer.backend(),
    gpuError: analyzer.gpu_error() ?? (preferGpu ? null : options.backend === "cpu" ? "the CPU was asked for (?backend=cpu)" : "this browser has no WebGPU"),
    model: analyzer.model_version(),
    loadMs: performance.now() - t0,
    race,
  });
}

/**
 * Start the CPU pool: one worker first, to measure what an instance costs, then as many more
 * as the cores and the memory budget allow. Never throws: without a pool this worker runs the
 * model itself.
 */
function startPool(ownBytes) {
  poolStart ??= (async () => {
    try {
      const p = new ModelPool((i) => new Worker(new URL("./model-worker.js", import.meta.url), { type: "module", name: "model-worker" }));
      const t0 = performance.now();
      const [first] = await p.grow(1, modelBytes.config, modelBytes.weights);
      if (first === undefined) throw new Error("the first model worker did not start");
      const n = poolSize({
        cores: navigator.hardwareConcurrency, requested: options.workers, instanceBytes: first,
        budgetBytes: TAB_BUDGET, reserveBytes: VOLUME_RESERVE + ownBytes,
      });
      if (n > 1) await p.grow(n - 1, modelBytes.config, modelBytes.weights);
      pool = p;
      postMessage({ type: "pool", workers: p.size, instanceMB: first / 2 ** 20, startMs: performance.now() - t0 });
    } catch (e) {
      postMessage({ type: "pool", workers: 0, error: String(e?.message ?? e) });
    }
    return pool;
  })();
  return poolStart;
}

const ready = load().catch((e) => {
  postMessage({ type: "error", fatal: true, message: `The model failed to load: ${e.message ?? e}` });
  throw e;
});

/** At most this many voxels are decoded by the pool per load: 512²×600, i.e. at most 300 MB of
 * int16 copies held in JS until the volume takes them (the largest volume VOLUME_RESERVE plans
 * for); the files beyond it are decoded here. */
const PREDECODE_MAX_VOXELS = 512 * 512 * 600;

/**
 * The files of a DICOM series decoded in the pool's workers while this worker reads them: each
 * file goes out once it is staged (its bytes are transferred; wasm holds its own copy), and
 * `done()` resolves with the function `load_staged` asks for a file's pixels (null when nothing
 * went out). Only where it cannot change what is loaded or hurt memory: the CPU pool, two or more
 * files with distinct names (the pixels are matched by name), and no more voxels out than the
 * series may have (`budget`: a series refused from its headers costs little decoding) nor than
 * PREDECODE_MAX_VOXELS: the decoded copies wait here until `load_staged` takes them, beside the
 * volume it fills, so a longer series has its later files decoded by this worker as before.
 */
function seriesDecoder(files, budget) {
  const names = files.map((f) => f.name);
  const on = pool?.size > 0 && files.length >= 2 && new Set(names).size === names.length;
  const pending = new Map();
  let voxels = 0;
  return {
    add(name, bytes, headerVoxels) {
      voxels += headerVoxels;
      if (!on || headerVoxels === 0 || voxels > Math.min(budget, PREDECODE_MAX_VOXELS)) return;
      pending.set(name, pool.decode(name, bytes));
    },
    async done() {
      if (!pending.size) return null;
      const pixels = new Map();
      for (const [name, p] of pending) pixels.set(name, await p);
      // Handed over once each, so the JS copies can go as wasm takes them.
      return (name) => { const px = pixels.get(name); pixels.delete(name); return px ?? undefined; };
    },
  };
}

/** Settles while an async analyzer call (a GPU batch) is in flight: wasm-bindgen refuses any
 * other call on the analyzer until it returns, so messages wait for it (`idle()`). */
let busy = null;
async function inFlight(call) {
  let release;
  busy = new Promise((r) => { release = r; });
  try { return await call; } finally { busy = null; release(); }
}
async function idle() { while (busy) await busy; }

/** Run `f`, adding its time to `progress[key]` (what this worker spends beside the model). */
function timed(progress, key, f) {
  const t0 = performance.now();
  try { return f(); } finally { progress[key] = (progress[key] || 0) + performance.now() - t0; }
}

/** Send finished slice views to the page. */
function postSlices(views, progress) {
  for (const slice of views) {
    progress.done++;
    postMessage({ type: "slice", slice, done: progress.done, total: progress.total, elapsedMs: performance.now() - progress.t0, gpuError: analyzer.gpu_error() ?? null },
      [slice.recon.buffer]);
  }
}

/** This worker runs the model on `zs` itself, `batch` slices at a time (the GPU path). A batch
 * computes the reconstruction for all its slices or none, so the sampled slices
 * (`progress.recon`) go in batches of their own. */
async function runHere(zs, id, batchParam, progress) {
  zs = [...zs.filter((z) => progress.recon.has(z)), ...zs.filter((z) => !progress.recon.has(z))];
  for (let k = 0; k < zs.length;) {
    if (id !== runId) return;
    // On the GPU a batch costs one dispatch and one readback; on the CPU batching buys nothing.
    const batch = batchParam || (analyzer.backend() === "webgpu" ? GPU_BATCH : 1);
    const part = zs.slice(k, k + batch);
    k += part.length;
    postSlices(await inFlight(analyzer.analyze_slices(Uint32Array.from(part))), progress);
    await new Promise((r) => setTimeout(r, 0));
  }
}

/**
 * The pool runs `zs`; what it could not finish (no worker left, or tried twice) runs here.
 * `onDone(z)` sees every finished slice.
 */
async function runPooled(zs, id, progress, onDone) {
  let crashAfter = options.crashworker > 0 ? options.crashworker : 0;
  const { left, failed } = await pool.run(zs, {
    reconOf: (z) => progress.recon.has(z),
    prepare: (z) => timed(progress, "prepareMs", () => analyzer.prepare_slices(Uint32Array.of(z))),
    finish: (z, packed, ms) => {
      timed(progress, "finishMs", () => postSlices(analyzer.finish_slices(Uint32Array.of(z), packed, ms), progress));
      onDone(z);
    },
    onDispatch: (z, i, sent) => {
      // Test hook: the first worker crashes once `?crashworker=K` slices have gone out.
      if (crashAfter && sent >= crashAfter && i === 0) { crashAfter = 0; pool.workers[0].worker.postMessage({ type: "crash" }); }
    },
  });
  if (id !== runId) return;
  if (failed.length) postMessage({ type: "status", text: `${failed.length} slice(s) failed twice in the pool (${failed[0].why}); running them here.` });
  const rest = [...left, ...failed.map((f) => f.z)].sort((a, b) => a - b);
  if (rest.length) await runHere(rest, id, 1, progress);
}

/** Series at least this long get the quick first estimate: below it the full lung mask takes
 * about a second or less (a 512² slice costs ~20 ms of mask in wasm), so it would only delay. */
const QUICK_MIN_SLICES = 48;

/**
 * The first estimate on a long series, while the full lung mask is made: a coarse mask (a
 * tenth of its time) gives the slices with lung and their frame, the pool runs about ten
 * spread ones without the reconstruction, and a provisional report over them goes out as soon
 * as they are in. Meanwhile this worker makes the full mask a step at a time, answering the
 * pool between steps. None of the estimate counts in the final figures (those slices are
 * analysed again on the full mask's frame). On the GPU this worker is the model: there the
 * estimate comes first and the mask after it (`quickHere`). Resolves with the coarse mask's time and the times (ms from
 * `t0`) to the estimate (null: none went out) and to the full mask, or null when it did not run.
 */
async function quickEstimate(id, t0) {
  const gpu = analyzer.backend() === "webgpu";
  if (!gpu && (!(await startPool(0)) || pool.size === 0)) return null;
  if (id !== runId) return null;
  const tPlan = performance.now();
  const run = analyzer.quick_plan();
  const planMs = performance.now() - tPlan;
  const first = coarseToFine(run.length, firstStep(run.length))[0].map((k) => run[k]);
  if (gpu) return { plan: planMs, estimate: await quickHere(first, run.length, id, t0), mask: null };
  let quickMs = null;
  const estimate = pool.run(first, {
    reconOf: () => false,
    // All at once: between two mask steps this worker cannot hand out the next slice.
    inFlight: Math.ceil(first.length / pool.size),
    prepare: (z) => analyzer.prepare_quick(Uint32Array.of(z)),
    finish: (z, packed) => analyzer.finish_quick(Uint32Array.of(z), packed),
  }).then(({ left, failed }) => {
    const done = first.length - left.length - failed.length;
    if (id !== runId || done === 0) return;
    postMessage({ type: "report", report: analyzer.quick_report(), provisional: true, quick: true, done, total: run.length, ms: performance.now() - t0, backend: analyzer.backend() });
    quickMs = performance.now() - t0;
  });
  // The pool's messages and the report above run between the steps.
  while (id === runId && !analyzer.lung_step()) await new Promise((r) => setTimeout(r, 0));
  const maskMs = performance.now() - t0;
  await estimate.catch(() => {});
  return { plan: planMs, estimate: quickMs, mask: maskMs };
}

/**
 * The first estimate on the GPU, where this worker is the model: the slices in batches, then
 * the report; the lung mask is made afterwards by the plan. Resolves with its time from `t0`, or
 * null (cancelled, or a GPU error: the analysis proper falls back for itself).
 */
async function quickHere(first, total, id, t0) {
  for (let k = 0; k < first.length; k += GPU_BATCH) {
    if (id !== runId) return null;
    await inFlight(analyzer.analyze_quick(Uint32Array.from(first.slice(k, k + GPU_BATCH))));
  }
  if (id !== runId) return null;
  postMessage({ type: "report", report: analyzer.quick_report(), provisional: true, quick: true, done: first.length, total, ms: performance.now() - t0, backend: analyzer.backend() });
  return performance.now() - t0;
}

/**
 * Analyse every slice, coarse to fine. After each pass but the last, a provisional report
 * over the slices done so far. On the CPU pool all passes go out as one queue, so the workers
 * never wait at a pass boundary: the provisional report is built when a pass completes while
 * they go on with the next.
 */
async function analyseAll(view, id, batchParam) {
  const nz = view.info.dims[2];
  const t0 = performance.now();
  // Only an estimate: if it fails, the full analysis still runs (and reports any real error).
  const quickMin = options.quick > 0 ? options.quick : QUICK_MIN_SLICES; // `?quick=N`; -1: `?quick=0`
  const quickMs = options.quick !== -1 && nz >= quickMin ? await quickEstimate(id, t0).catch(() => null) : null;
  if (id !== loadId) return; // a newer volume replaced this one while it ran
  // Slices without lung never reach the model (a whole-body CT: most of them); the plan
  // computes the lung mask, which every slice needs anyway.
  const tPlan = performance.now();
  const plan = analyzer.plan_slices(options.reconEvery || 0);
  const planMs = performance.now() - tPlan;
  if (plan.skipped.length) postMessage({ type: "skipped", slices: plan.skipped, run: plan.run.length });
  // `recon`: the slices whose reconstruction (the out-of-distribution check) is computed, a
  // sample on long series (the same rule as the CLI).
  const progress = { done: 0, total: plan.run.length, t0, recon: new Set(plan.recon) };
  const passes = coarseToFine(plan.run.length, firstStep(plan.run.length)).map((pass) => pass.map((k) => plan.run[k]));
  const provisional = () => {
    progress.firstPassMs ??= performance.now() - t0; // for the benchmark: what the first estimate waits for
    postMessage({ type: "report", report: timed(progress, "provisionalMs", () => analyzer.report()), provisional: true, done: progress.done, total: progress.total, ms: performance.now() - progress.t0, backend: analyzer.backend() });
  };
  for (let p = 0; p < passes.length && id === runId; p++) {
    // The CPU pool (started at load on the CPU path, or here after a GPU failure).
    const usePool = analyzer.backend() !== "webgpu" && await startPool(0);
    if (id !== runId) break;
    if (usePool && pool.size > 0) {
      const rest = passes.slice(p);
      const missing = rest.map((pass) => pass.length);
      const passOf = new Map(rest.flatMap((pass, k) => pass.map((z) => [z, k])));
      let reported = 0; // passes of `rest` whose provisional report went out
      await runPooled(rest.flat(), id, progress, (z) => {
        missing[passOf.get(z)]--;
        while (reported < rest.length - 1 && missing[reported] === 0) { reported++; provisional(); }
      });
      break;
    }
    await runHere(passes[p], id, batchParam, progress);
    if (p < passes.length - 1 && id === runId) provisional();
  }
  if (id !== loadId) return; // a newer volume replaced this one: its run reports for itself
  const cancelled = id !== runId;
  const tReport = performance.now();
  const report = analyzer.report(); // includes the lung mask, computed here on first use
  const reportMs = performance.now() - tReport;
  postMessage({ type: "report", report, cancelled, done: progress.done, total: progress.total, ms: performance.now() - progress.t0, reportMs, backend: analyzer.backend(), workers: pool?.size ?? 0,
    // This worker's wasm memory (it never shrinks): the browser tests bound what a damaged file may add.
    memBytes: wasm?.memory?.buffer?.byteLength ?? null,
    ownerMs: { quickPlan: quickMs?.plan ?? null, quick: quickMs?.estimate ?? null, quickMask: quickMs?.mask ?? null, plan: planMs, firstPass: progress.firstPassMs ?? null, prepare: progress.prepareMs || 0, finish: progress.finishMs || 0, provisionalReports: progress.provisionalMs || 0 } });
  // A follow-up: the change against the kept baseline (over what was analysed, if cancelled).
  if (analyzer.has_baseline()) postMessage({ type: "comparison", json: analyzer.compare() });
}

onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === "init") { options = msg.options || {}; optionsReceived(); return; }
  if (msg.type === "cancel") { runId++; pool?.cancel(); return; }
  let id = null; // the run this message started, if any
  let followupPending = false; // a follow-up whose volume is not loaded yet (the baseline waits aside)
  try {
    await ready;
    if (msg.type === "load" || msg.type === "demo") {
      id = ++runId; // stops the run in progress at its next slice
      loadId = id;
      pool?.cancel();
    }
    await idle();
    if (msg.type === "view") {
      // The pixels of slice z and, once analysed, its overlay (for the volume `msg.id`, or the
      // baseline of a comparison).
      const ofBase = msg.which === "baseline";
      if (ofBase ? !analyzer.has_baseline() : msg.id !== loadId) return;
      const pixels = ofBase ? analyzer.baseline_slice_pixels(msg.z) : analyzer.slice_pixels(msg.z);
      const overlay = (ofBase ? analyzer.baseline_slice_overlay(msg.z) : analyzer.slice_overlay(msg.z)) ?? null;
      const transfer = [pixels.buffer, ...(overlay ? [overlay.classes.buffer, overlay.lung.buffer] : [])];
      postMessage({ type: "view", id: msg.id, z: msg.z, gen: msg.gen, which: msg.which ?? null, pixels, overlay }, transfer);
      return;
    }
    if (msg.type === "mpr") {
      if (msg.id !== loadId) return;
      const layers = Object.fromEntries(["hu", "lesions", "lung"].map((w) => [w, analyzer.viewer_nifti(w, MPR_MAX_VOXELS)]));
      postMessage({ type: "mpr", id: msg.id, gen: msg.gen, layers }, Object.values(layers).map((b) => b.buffer));
      return;
    }
    if (msg.type === "swap") {
      analyzer.swap_scans();
      postMessage({ type: "comparison", json: analyzer.compare(), swapped: true });
      return;
    }
    if (msg.type === "close-compare") {
      analyzer.drop_baseline();
      return;
    }
    if (msg.type === "export-mask") {
      const bytes = analyzer.mask_nifti();
      postMessage({ type: "mask", bytes, format: "nifti" }, [bytes.buffer]);
      return;
    }
    if (msg.type === "export-seg") {
      const bytes = analyzer.mask_dicom_seg();
      postMessage({ type: "mask", bytes, format: "seg" }, [bytes.buffer]);
      return;
    }
    if (msg.type !== "load" && msg.type !== "demo") return;
    if (id !== runId) return; // a newer load came while this one waited
    postMessage({ type: "status", text: "Reading the files…" });
    const tRead = performance.now();
    let view;
    // A follow-up keeps the analysed scan aside as its baseline; any other load ends a comparison.
    if (msg.followup && msg.type === "load") { followupPending = true; analyzer.keep_as_baseline(); } else analyzer.drop_baseline();
    if (msg.type === "demo") view = analyzer.load_demo();
    else {
      // One file at a time into wasm, each buffer dropped once copied (or handed to a pool
      // worker to decode): the files are never held twice; only the decoded pixels wait here,
      // up to PREDECODE_MAX_VOXELS.
      analyzer.begin_load();
      // The baseline holds its share of the memory budget.
      const budget = Math.max(1, maxVoxels() - analyzer.baseline_voxels());
      const decoder = seriesDecoder(msg.files, budget);
      for (const f of msg.files) {
        const bytes = new Uint8Array(await f.arrayBuffer());
        if (id !== runId) return; // a newer load took over (and cleared what was staged)
        decoder.add(f.name, bytes, analyzer.stage_file(f.name, bytes));
      }
      const predecoded = await decoder.done();
      if (id !== runId) return;
      view = analyzer.load_staged(budget, predecoded);
      // From the first file read on: the pool decodes while the files are staged.
      view.load_ms = performance.now() - tRead;
    }
    followupPending = false;
    // The middle slice's pixels come with the volume: the page shows it at once, before the
    // lung mask (seconds on a long series) keeps this worker busy.
    const mid = Math.floor(view.info.dims[2] / 2);
    const pixels = analyzer.slice_pixels(mid);
    postMessage({ type: "volume", view, id, followup: !!msg.followup, first: { z: mid, pixels } }, [pixels.buffer]);
    await analyseAll(view, id, Number(msg.batch) || 0);
  } catch (e) {
    // A run replaced by a newer load fails quietly (its volume is gone); the newer one reports.
    // A follow-up that could not be read gives the baseline back, with its analysis.
    // (When keeping it failed, the scan never left: it is the current one all along.)
    const restored = followupPending && id === runId && (analyzer.restore_baseline() || analyzer.has_current());
    if (id === null || id === runId) postMessage({ type: "error", message: String(e.message ?? e), restoredId: restored ? loadId : null });
  }
};
