// Wires file input → worker → canvases and results. Keeps the page usable after any error.
import { composeRgba, drawRgba } from "./render.js";

export function startApp(doc) {
  const $ = (id) => doc.getElementById(id);
  const ui = {
    file: $("file"), drop: $("drop"), status: $("status"), error: $("error"),
    viewer: $("viewer"), results: $("results"), slice: $("slice"), recon: $("recon"),
    overlay: $("overlay"), opacity: $("opacity"), pcovid: $("pcovid"), pbar: $("pbar"),
    pnote: $("pnote"), lesion: $("lesion"), ood: $("ood"), meta: $("meta"),
  };
  let worker = null;
  let backendInfo = "";
  let current = null;

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
  }

  function startWorker() {
    worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "worker" });
    worker.onmessage = (ev) => onWorkerMessage(ev.data);
    // A wasm trap or an out-of-memory kills the worker: say so and start a fresh one.
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      showError(`The analysis engine crashed (${ev.message || "wasm trap or out of memory"}); it has been restarted. Try again or use a smaller image.`);
      worker.terminate();
      startWorker();
    };
  }

  function onWorkerMessage(msg) {
    if (msg.type === "ready") {
      backendInfo = `model ${msg.model} on ${msg.backend}` + (msg.gpuError ? ` (CPU fallback: ${msg.gpuError})` : "");
      ui.status.textContent = `Ready: ${backendInfo}. Model loaded in ${msg.loadMs.toFixed(0)} ms.`;
      doc.body.dataset.backend = msg.backend;
      doc.body.dataset.ready = "1";
    } else if (msg.type === "status") {
      ui.status.textContent = msg.text;
    } else if (msg.type === "progress") {
      ui.status.textContent = `Analysing ${msg.name}…`;
    } else if (msg.type === "result") {
      current = msg.result;
      if (msg.gpuError) backendInfo = `model ${current.model} on ${current.backend} (${msg.gpuError})`;
      render();
      ui.status.textContent = `Done: ${current.name} in ${current.ms.toFixed(0)} ms — ${backendInfo}.`;
      doc.body.dataset.analyses = String(Number(doc.body.dataset.analyses || 0) + 1);
    } else if (msg.type === "error") {
      showError(msg.message);
      ui.status.textContent = msg.fatal ? "The model is not available." : `Ready: ${backendInfo}.`;
      doc.body.dataset.errors = String(Number(doc.body.dataset.errors || 0) + 1);
    }
  }

  function render() {
    const r = current;
    if (!r) return;
    const rgba = composeRgba(r.grey, ui.overlay.checked ? r.classes : null, Number(ui.opacity.value));
    drawRgba(ui.slice, rgba, r.width, r.height);
    if (r.recon.length) drawRgba(ui.recon, composeRgba(r.recon, null, 0), r.size, r.size);
    ui.viewer.hidden = false;
    ui.results.hidden = false;
    const p = r.p_covid;
    ui.pcovid.textContent = p.toFixed(2);
    ui.pbar.style.width = `${(100 * p).toFixed(1)}%`;
    ui.pnote.textContent = p >= 0.3 && p <= 0.7
      ? "The model is uncertain about this image."
      : p > 0.7 ? "The model finds COVID-19-like patterns; this is not a diagnosis."
        : "The model finds few COVID-19-like patterns; this does not rule COVID-19 out.";
    ui.lesion.textContent = `${r.lesion_px} px (${r.lesion_pct.toFixed(1)} % of the image): ground-glass ${r.ggo_px} px, consolidation ${r.consolidation_px} px`;
    ui.ood.hidden = r.ood !== true;
    ui.ood.textContent = "This does not look like the chest CT the model was trained on; results may be unreliable.";
    ui.meta.textContent = `${r.name} · ${r.width}×${r.height} · model ${r.model} · ${r.backend} · ${r.ms.toFixed(0)} ms` +
      (r.recon_mse != null ? ` · reconstruction error ${r.recon_mse.toFixed(4)}` : "");
  }

  async function analyzeFile(file) {
    ui.error.hidden = true;
    const bytes = new Uint8Array(await file.arrayBuffer());
    worker.postMessage({ type: "analyze", name: file.name, bytes }, [bytes.buffer]);
  }

  ui.file.addEventListener("change", () => {
    if (ui.file.files.length) analyzeFile(ui.file.files[0]);
    ui.file.value = "";
  });
  ui.drop.addEventListener("dragover", (e) => { e.preventDefault(); ui.drop.classList.add("hover"); });
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("hover"));
  ui.drop.addEventListener("drop", (e) => {
    e.preventDefault();
    ui.drop.classList.remove("hover");
    if (e.dataTransfer.files.length) analyzeFile(e.dataTransfer.files[0]);
  });
  ui.overlay.addEventListener("change", render);
  ui.opacity.addEventListener("input", render);
  startWorker();
  // Offline after one visit (not on file:// or where service workers are unavailable).
  if ("serviceWorker" in navigator && location.protocol.startsWith("http")) {
    navigator.serviceWorker.register("sw.js").catch((e) => console.warn("service worker:", e));
  }
}
