// The inference worker: owns the wasm module, the model and the current volume.
// In:  {type: "load", files: [{name, bytes}]} | {type: "demo"} | {type: "cancel"} | {type: "export-mask"} | {type: "export-seg"}
// Out: {type: "status"|"ready"|"volume"|"slice"|"report"|"mask"|"error"}.
import init, { Analyzer } from "../pkg/ctscreen.js";
import { coarseToFine } from "./schedule.js";

const MODEL_DIR = "models/ctscreen-v1";
let analyzer = null;
/** Slices per WebGPU dispatch (`?batch=N` in the page's URL overrides it). */
const GPU_BATCH = 4;
let runId = 0; // bumped by every new load or cancel; a running loop stops when it changes

async function fetchBytes(path) {
  const res = await fetch(path);
  if (!res.ok) throw new Error(`could not load ${path} (HTTP ${res.status})`);
  return new Uint8Array(await res.arrayBuffer());
}

async function load() {
  postMessage({ type: "status", text: "Loading the analysis engine…" });
  await init();
  postMessage({ type: "status", text: "Loading the model weights…" });
  const [config, weights] = await Promise.all([
    fetchBytes(`${MODEL_DIR}/config.json`),
    fetchBytes(`${MODEL_DIR}/model.bpk`),
  ]);
  const preferGpu = "gpu" in navigator && navigator.gpu !== undefined;
  const t0 = performance.now();
  postMessage({ type: "status", text: preferGpu ? "Preparing the GPU (first use compiles shaders; this can take a while)…" : "Preparing the CPU backend…" });
  analyzer = await Analyzer.create(config, weights, preferGpu);
  postMessage({
    type: "ready",
    backend: analyzer.backend(),
    gpuError: analyzer.gpu_error() ?? (preferGpu ? null : "this browser has no WebGPU"),
    model: analyzer.model_version(),
    loadMs: performance.now() - t0,
  });
}

const ready = load().catch((e) => {
  postMessage({ type: "error", fatal: true, message: `The model failed to load: ${e.message ?? e}` });
  throw e;
});

/**
 * Analyse every slice, coarse to fine, yielding to the event loop between slices so "cancel" is
 * heard. After each pass but the last, a provisional report over the slices done so far.
 */
async function analyseAll(view, id, batchParam) {
  const nz = view.info.dims[2];
  const t0 = performance.now();
  const passes = coarseToFine(nz);
  let done = 0;
  outer: for (let p = 0; p < passes.length; p++) {
    const pass = passes[p];
    for (let k = 0; k < pass.length;) {
      if (id !== runId) break outer;
      // On the GPU a batch costs one dispatch and one readback; on the CPU batching buys nothing.
      const batch = batchParam || (analyzer.backend() === "webgpu" ? GPU_BATCH : 1);
      const zs = pass.slice(k, k + batch);
      k += zs.length;
      for (const slice of await analyzer.analyze_slices(Uint32Array.from(zs))) {
        done++;
        postMessage({ type: "slice", slice, done, total: nz, elapsedMs: performance.now() - t0, gpuError: analyzer.gpu_error() ?? null },
          [slice.classes.buffer, slice.recon.buffer, slice.lung.buffer]);
      }
      await new Promise((r) => setTimeout(r, 0));
    }
    if (p < passes.length - 1 && id === runId) {
      postMessage({ type: "report", report: analyzer.report(), provisional: true, done, total: nz, ms: performance.now() - t0, backend: analyzer.backend() });
    }
  }
  const cancelled = id !== runId;
  const tReport = performance.now();
  const report = analyzer.report(); // includes the lung mask, computed here on first use
  const reportMs = performance.now() - tReport;
  postMessage({ type: "report", report, cancelled, done, total: nz, ms: performance.now() - t0, reportMs, backend: analyzer.backend() });
}

onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type === "cancel") { runId++; return; }
  try {
    await ready;
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
    const id = ++runId;
    postMessage({ type: "status", text: "Reading the files…" });
    const view = msg.type === "demo" ? analyzer.load_demo() : analyzer.load_files(msg.files);
    postMessage({ type: "volume", view }, [view.voxels_i16.buffer]);
    await analyseAll(view, id, Number(msg.batch) || 0);
  } catch (e) {
    postMessage({ type: "error", message: String(e.message ?? e) });
  }
};
