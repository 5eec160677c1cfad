// The inference worker: owns the wasm module and the model. Messages in:
//   {type: "analyze", name, bytes}   Messages out: {type: "ready"|"progress"|"result"|"error"}.
import init, { Analyzer } from "../pkg/ctscreen.js";

const MODEL_DIR = "models/ctscreen-v1";
let analyzer = null;

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

onmessage = async (ev) => {
  const msg = ev.data;
  if (msg.type !== "analyze") return;
  try {
    await ready;
    postMessage({ type: "progress", name: msg.name });
    const result = await analyzer.analyze_image(msg.bytes, msg.name);
    postMessage({ type: "result", result, gpuError: analyzer.gpu_error() ?? null },
      [result.grey.buffer, result.classes.buffer, result.recon.buffer]);
  } catch (e) {
    postMessage({ type: "error", message: `${msg.name}: ${e.message ?? e}` });
  }
};
