// Wires file input → worker → viewer and report. Keeps the page usable after any error.
import { PRESETS, composeRgba, drawRgba, drawStrip, windowSlice } from "./render.js";
import { baselineZ, changeRows, drawProfiles, followupZ, keyLevel, levelRange, nearestSlice } from "./compare-view.js";

/** Read a dropped directory entry recursively into File objects. */
async function entryFiles(entry) {
  if (entry.isFile) return [await new Promise((res, rej) => entry.file(res, rej))];
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
    if (!batch.length) break;
    for (const e of batch) out.push(...(await entryFiles(e)));
  }
  return out;
}

/** Trigger a download of a Blob (made here, never uploaded). */
function download(doc, blob, name) {
  const a = doc.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  doc.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

export function startApp(doc) {
  const $ = (id) => doc.getElementById(id);
  const ui = Object.fromEntries([
    "file", "folder", "drop", "demo", "status", "error", "viewer", "results", "slice", "recon",
    "overlay", "opacity", "call", "pcovid", "pbar", "pnote", "pattern", "numbers", "ood", "meta", "warnings",
    "slice-info", "slice-result", "slice-figure", "strip", "wl-lung", "wl-med", "wl-text",
    "progress", "progress-wrap", "progress-text", "cancel", "synthetic", "dl-mask", "dl-png",
    "dl-json", "print", "dl-seg", "lung-outline", "nolung", "provisional",
    "fu-file", "fu-folder", "followup-row", "compare", "cmp-base-name", "cmp-fu-name", "cmp-summary",
    "cmp-warnings", "cmp-align", "cmp-panes", "cmp-base-fig", "cmp-base", "cmp-base-cap", "cmp-fu-fig",
    "cmp-fu", "cmp-fu-cap", "cmp-plot", "cmp-plot-fig", "cmp-plot-cap", "cmp-table", "cmp-swap", "cmp-json", "cmp-print",
    "cmp-close", "cmp-disclaimer", "slice-cross", "mpr", "mpr-figure", "mpr-caption", "render3d", "render-figure", "show3d", "show3d-wrap", "render-pane", "recon-note",
  ].map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), $(id)]));
  let worker = null;
  let backendInfo = "";
  let poolText = "";
  // The current volume: geometry, the slices drawn lately, per-slice results, report.
  let vol = null;
  // A follow-up comparison: the baseline scan (kept in the worker; `vol` is then the follow-up),
  // and the comparison once both are analysed, with the level shown (baseline patient z, mm).
  let base = null;
  let cmp = null;
  /** Bumped when the scans swap places: views asked for before belong to the other one. */
  let viewGen = 0;
  /** Slices kept in the page for drawing (each 2 B + 2 B a pixel). */
  const VIEW_CACHE = 24;
  /** Coronal, sagittal and 3-D panes (NiiVue), where WebGL2 is there; made on the first volume. */
  let mpr = null;
  let mprLoading = null;
  const MPR_CAPTION = "Coronal (top) and sagittal (bottom): click to move the crosshair, wheel to scroll, right-drag for window/level";
  const MPR_PENDING = "Coronal, sagittal and 3-D views: drawn when the analysis ends (drawing them meanwhile would take processor time from the model).";
  const mprPossible = (() => { try { return !!doc.createElement("canvas").getContext("webgl2"); } catch { return false; } })();
  // NiiVue is its own chunk, fetched at start beside the model (never once a scan is open: no
  // request is made after analysis starts), so the page script stays small.
  const viewerModule = mprPossible ? import(/* webpackChunkName: "viewer" */ "./mpr.js") : null;
  viewerModule?.catch((e) => console.warn("multiplanar view unavailable:", e));

  function showError(message) {
    ui.error.textContent = message;
    ui.error.hidden = false;
    doc.body.dataset.errors = String(Number(doc.body.dataset.errors || 0) + 1);
  }

  function startWorker() {
    worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "worker" });
    worker.onmessage = (ev) => onWorkerMessage(ev.data);
    worker.postMessage({ type: "init", options: urlOptions() });
    // A wasm trap or an out-of-memory kills the worker: say so and start a fresh one.
    worker.onerror = (ev) => {
      ev.preventDefault?.();
      showError(`The analysis engine crashed (${ev.message || "wasm trap or out of memory"}); it has been restarted. Try again or use a smaller volume.`);
      ui.progressWrap.hidden = true;
      worker.terminate();
      startWorker();
    };
  }

  function onWorkerMessage(msg) {
    if (msg.type === "ready") {
      backendInfo = `model ${msg.model} on ${msg.backend}${poolText}` + (msg.gpuError ? ` (CPU fallback: ${msg.gpuError})` : "");
      ui.status.textContent = `Ready: ${backendInfo}. Model loaded in ${msg.loadMs.toFixed(0)} ms.`;
      doc.body.dataset.backend = msg.backend;
      if (msg.race) doc.body.dataset.race = `${msg.race.gpu_ms.toFixed(0)},${msg.race.cpu_ms.toFixed(0)},${msg.race.switched}`;
      doc.body.dataset.model = msg.model;
      doc.body.dataset.ready = "1";
    } else if (msg.type === "pool") {
      // The CPU pool (before "ready"): model workers beside this page's worker.
      poolText = msg.workers > 0 ? ` × ${msg.workers} worker${msg.workers > 1 ? "s" : ""} (${msg.instanceMB.toFixed(0)} MB each)` : "";
      if (msg.error) console.warn("CPU pool unavailable, analysing in one worker:", msg.error);
      doc.body.dataset.workers = String(msg.workers);
      if (msg.instanceMB) doc.body.dataset.workerMb = msg.instanceMB.toFixed(1);
    } else if (msg.type === "status") {
      ui.status.textContent = msg.text;
    } else if (msg.type === "volume") {
      const v = msg.view;
      const [nx, ny, nz] = v.info.dims;
      vol = {
        ...v, id: msg.id, nx, ny, nz, z: Math.floor(nz / 2),
        // Slices drawn lately (pixels and overlay), asked of the worker, which holds the volume.
        views: new Map([[msg.first.z, { pixels: msg.first.pixels, overlay: null, stale: false }]]), asked: new Set(),
        slices: new Array(nz), report: null, t0: performance.now(),
        win: v.info.hu ? { ...PRESETS.lung } : { width: 255, level: 127.5 },
        cross: [Math.floor(nx / 2), Math.floor(ny / 2)],
      };
      showMpr();
      if (!msg.followup) { base = null; cmp = null; }
      renderCompare();
      ui.synthetic.hidden = !v.synthetic;
      ui.dlSeg.hidden = v.info.kind !== "dicom";
      ui.wlLung.disabled = ui.wlMed.disabled = !v.info.hu;
      ui.viewer.hidden = false;
      ui.results.hidden = true;
      ui.progressWrap.hidden = false;
      ui.progress.max = nz; ui.progress.value = 0;
      ui.status.textContent = `Loaded ${v.name}: ${nx}×${ny}×${nz} (${v.info.kind}) in ${v.load_ms.toFixed(0)} ms. Analysing…`;
      doc.body.dataset.slices = String(nz);
      doc.body.dataset.run = String(nz); // slices the model runs on, until the plan says fewer
      doc.body.dataset.done = "0";
      render();
    } else if (msg.type === "slice") {
      if (!vol) return;
      // Each slice arrives once; a repeat would mean a pool retry went wrong (the tests watch this).
      if (vol.slices[msg.slice.z]) doc.body.dataset.repeatedSlices = String(Number(doc.body.dataset.repeatedSlices || 0) + 1);
      vol.slices[msg.slice.z] = msg.slice;
      // Its overlay is new: ask again (the pixels drawn meanwhile stay).
      const seen = vol.views.get(msg.slice.z);
      if (seen) seen.stale = true;
      (vol.sliceMs ||= []).push(msg.slice.ms);
      ui.progress.value = msg.done;
      // Rate and time left from the slices so far (the first slice includes warm-up).
      const rate = msg.done / Math.max(1e-3, msg.elapsedMs / 1000);
      const left = (msg.total - msg.done) / Math.max(1e-6, rate);
      ui.progressText.textContent = `${msg.done} / ${msg.total} slices with lung${vol.skipped ? ` (${vol.skipped} without lung need no model)` : ""} · ${rate.toFixed(1)} slices/s · about ${Math.ceil(left)} s left`;
      doc.body.dataset.done = String(msg.done);
      if (msg.gpuError) backendInfo = `${msg.slice.backend} (${msg.gpuError})`;
      if (msg.slice.z === vol.z || msg.done === 1) render();
      else drawStrip(ui.strip, vol.slices, vol.z);
    } else if (msg.type === "skipped") {
      // Slices without lung: analysed without the model (no p, no lesion); the progress counts
      // the rest.
      if (!vol) return;
      for (const s of msg.slices) vol.slices[s.z] = s;
      vol.skipped = msg.slices.length;
      ui.progress.max = msg.run;
      doc.body.dataset.run = String(msg.run);
      drawStrip(ui.strip, vol.slices, vol.z);
    } else if (msg.type === "view") {
      if (msg.gen !== viewGen) return;
      const scan = msg.which === "baseline" ? base : vol;
      if (!scan || (msg.which !== "baseline" && msg.id !== vol.id)) return;
      scan.asked.delete(msg.z);
      scan.views.delete(msg.z);
      scan.views.set(msg.z, { pixels: msg.pixels, overlay: msg.overlay, stale: false });
      // A few dozen slices kept for scrolling back and forth; the oldest go first.
      for (const k of scan.views.keys()) { if (scan.views.size <= VIEW_CACHE) break; if (k !== scan.z && k !== scan.paneZ) scan.views.delete(k); }
      if (scan === vol && msg.z === vol.keyCrossZ && msg.overlay) {
        vol.cross = keyCross(msg.z) ?? vol.cross;
        vol.keyCrossZ = null;
      }
      if (scan === vol && msg.z === vol.z) render();
      if (cmp && msg.z === scan.paneZ) renderPanes();
    } else if (msg.type === "report" && msg.provisional) {
      // Early estimate from the slices done so far; the run goes on.
      if (!vol) return;
      vol.report = JSON.parse(msg.report);
      vol.reportText = msg.report;
      vol.ms = msg.ms;
      vol.provisional = `Provisional (${msg.done} of ${msg.total} slices${msg.quick ? ", on a quick lung outline" : ""}): the figures below will change as the rest arrives.`;
      vol.firstProvisionalMs ??= performance.now() - vol.t0;
      if (msg.quick) doc.body.dataset.quickSeen = String(Number(doc.body.dataset.quickSeen || 0) + 1);
      doc.body.dataset.provisionalSeen = String(Number(doc.body.dataset.provisionalSeen || 0) + 1);
      render();
    } else if (msg.type === "report") {
      if (!vol) return;
      vol.report = JSON.parse(msg.report);
      vol.reportText = msg.report;
      vol.ms = msg.ms;
      vol.provisional = msg.cancelled && msg.done < msg.total ? `Partial: cancelled after ${msg.done} of ${msg.total} slices.` : null;
      ui.progressWrap.hidden = true;
      // Open on the slice with the most lesion inside the lung: the key image.
      const key = vol.report.slices.reduce((a, b) => (b.lesion_px > (a?.lesion_px ?? -1) ? b : a), null);
      if (key && key.lesion_px > 0 && !vol.userScrolled) vol.z = key.z;
      // The crosshair on its lesions once its overlay is here (asked for by render below).
      if (key && key.lesion_px > 0 && !vol.userScrolled) {
        const at = vol.views.get(key.z);
        if (at?.overlay && !at.stale) vol.cross = keyCross(key.z) ?? vol.cross;
        else vol.keyCrossZ = key.z;
      }
      showMpr();
      render();
      ui.status.textContent = `${msg.cancelled ? "Cancelled" : "Done"}: ${vol.name}, ${vol.report.slices.length} slice(s) in ${msg.ms.toFixed(0)} ms on ${msg.backend}${msg.workers > 1 ? ` with ${msg.workers} workers` : ""}.`;
      // Timings for the benchmark script (tests/e2e/bench.mjs).
      doc.defaultView.ctscreenTimings = {
        sliceMs: vol.sliceMs || [], totalMs: msg.ms, reportMs: msg.reportMs, loadMs: vol.load_ms, backend: msg.backend,
        workers: msg.workers, ownerMs: msg.ownerMs, firstProvisionalMs: vol.firstProvisionalMs ?? null, finalMs: performance.now() - vol.t0,
        oodChecked: vol.report.ood_checked,
        summary: { call: vol.report.call.state, p_covid: vol.report.p_covid, involvement_pct: vol.report.involvement_pct, severity: vol.report.severity, lesion_ml: vol.report.lesion_ml?.total, ood: vol.report.ood, ood_slices: vol.report.ood_slices.length },
      };
      if (msg.workers !== undefined) doc.body.dataset.workersAfterRun = String(msg.workers);
      if (msg.memBytes != null) doc.body.dataset.wasmMem = String(msg.memBytes);
      doc.body.dataset.analyses = String(Number(doc.body.dataset.analyses || 0) + 1);
    } else if (msg.type === "comparison") {
      if (!base || !vol) return;
      if (msg.swapped) {
        [base, vol] = [vol, base];
        [base.id, vol.id] = [vol.id, base.id]; // the worker's current scan answers to the load id
        vol.z = Math.min(vol.z, vol.nz - 1);
        showMpr();
        render();
      }
      const data = JSON.parse(msg.json);
      const level = cmp && msg.swapped ? null : cmp?.level;
      cmp = { data, text: msg.json, level: level ?? keyLevel(data) ?? base.positions_mm[base.z] ?? 0 };
      doc.body.dataset.comparisons = String(Number(doc.body.dataset.comparisons || 0) + 1);
      // For the browser tests, as `ctscreenTimings`.
      doc.defaultView.ctscreenComparison = data;
      renderCompare();
    } else if (msg.type === "mpr") {
      if (!mpr || !vol || msg.id !== vol.id || msg.gen !== viewGen) return;
      mpr.load(msg.id, msg.layers, vol.win, mprShow()).then(() => {
        mpr.setVoxel([...vol.cross, vol.z]);
        ui.mprCaption.textContent = MPR_CAPTION;
        ui.show3d.disabled = false;
        doc.body.dataset.mprLoaded = String(Number(doc.body.dataset.mprLoaded || 0) + 1);
      });
    } else if (msg.type === "mask") {
      if (msg.format === "seg") download(doc, new Blob([msg.bytes], { type: "application/dicom" }), `${baseName()}-lesions-seg.dcm`);
      else download(doc, new Blob([msg.bytes], { type: "application/gzip" }), `${baseName()}-lesions.nii.gz`);
    } else if (msg.type === "error") {
      if (msg.restoredId != null && base) {
        // The follow-up could not be read: the baseline's analysis is shown again, whole.
        vol = base; vol.id = msg.restoredId; base = null; cmp = null;
        showMpr();
        doc.body.dataset.restored = String(Number(doc.body.dataset.restored || 0) + 1);
        render(); renderCompare();
      }
      showError(msg.message);
      ui.progressWrap.hidden = true;
      ui.status.textContent = msg.fatal ? "The model is not available." : `Ready: ${backendInfo}.`;
    }
  }

  /** A whole number from the page's URL within [1, max], or 0 when absent or out of range. */
  function urlInt(name, max) {
    const n = Number(new URLSearchParams(doc.defaultView.location.search).get(name));
    return Number.isInteger(n) && n >= 1 && n <= max ? n : 0;
  }
  /** `?batch=N`: slices per model call (benchmarks compare sizes with it). */
  const urlBatch = () => urlInt("batch", 64);
  /**
   * `?backend=cpu` forces the CPU path, `?backend=webgpu` keeps WebGPU even where one slice takes
   * longer there than on the CPU (by default the page then uses the CPU), `?workers=N` the size of its pool (benchmarks and tests
   * compare sizes on one build), `?crashworker=K` crashes a pool worker after K slices (test),
   * `?model=v1` loads the first model, the U-Net trained from scratch (comparisons; only the default,
   * v2, is precached for offline use), `?reconevery=N` checks the reconstruction on every N-th slice
   * with lung instead of the sample the CLI also takes (1: all; benchmarks compare with it),
   * `?quick=0` skips the quick first estimate on long series (benchmarks compare with it),
   * `?quick=N` makes it from N slices on (tests run it on a short series).
   */
  function urlOptions() {
    const q = new URLSearchParams(doc.defaultView.location.search);
    const backend = ["cpu", "webgpu"].includes(q.get("backend")) ? q.get("backend") : "auto";
    const model = q.get("model") === "v1" ? "ctscreen-v1" : "ctscreen-v2";
    return { backend, model, workers: urlInt("workers", 16), crashworker: urlInt("crashworker", 100000), reconEvery: urlInt("reconevery", 64), quick: q.get("quick") === "0" ? -1 : urlInt("quick", 100000), deviceMemory: doc.defaultView.navigator.deviceMemory ?? null };
  }

  function baseName() {
    return (vol?.name || "ctscreen").replace(/\.(nii\.gz|nii|dcm|png|jpe?g)$/i, "").replace(/[^\w.-]+/g, "_");
  }

  function setSlice(z) {
    if (!vol) return;
    vol.z = Math.max(0, Math.min(vol.nz - 1, z));
    vol.userScrolled = true;
    render();
  }

  /** The coronal, sagittal and 3-D panes for the current scan (a volume of several slices, where
   * WebGL2 is there), or none: a PNG/JPEG or single slice keeps the axial pane alone. */
  function showMpr() {
    const on = !!vol && vol.nz > 1 && mprPossible;
    ui.mprFigure.hidden = ui.renderFigure.hidden = ui.sliceCross.hidden = !on;
    doc.body.dataset.mpr = on ? "1" : "0";
    doc.body.dataset.mprLoaded = "";
    ui.show3d.disabled = true; // until this scan's maps are in place
    // The last scan's volumes go at once: its reformats must not stay beside another scan.
    mpr?.clear();
    if (!on) return;
    ui.mprCaption.textContent = MPR_PENDING;
    // NiiVue starts (WebGL contexts, dozens of shaders compiled on a software GPU) only once an
    // analysis has ended: before, it takes the page's thread and cores from the model.
    if (!vol.report || !ui.progressWrap.hidden) return;
    mprLoading ??= viewerModule.then(({ MprView }) => new MprView(ui.mpr, (v) => {
      // A click, scroll or key in the coronal or sagittal pane: every pane follows.
      if (!vol) return;
      vol.cross = [v[0], v[1]];
      vol.z = v[2];
      vol.userScrolled = true;
      render();
    }, (win) => { if (vol?.info.hu) { vol.win = win; render(); } }));
    const scan = vol;
    mprLoading.then((view) => {
      mpr = view;
      if (scan !== vol) return; // another scan came meanwhile: its own call does this
      mpr.reset(vol.id, vol.affine, [vol.nx, vol.ny, vol.nz], vol.info.hu);
      if (vol.report && ui.progressWrap.hidden) askMpr();
    }).catch((e) => {
      console.warn("multiplanar view unavailable:", e);
      ui.mprFigure.hidden = ui.renderFigure.hidden = ui.sliceCross.hidden = true;
      doc.body.dataset.mpr = "0";
    });
  }

  // For the browser tests: where a voxel is drawn in the reformats, and the crosshair's voxel.
  doc.defaultView.ctscreenMpr = {
    locate: (v) => mpr?.locate(v) ?? null,
    cross: () => (vol ? [...vol.cross, vol.z] : null),
    classAt: (v) => vol?.views.get(v[2])?.overlay?.classes[v[0] + vol.nx * v[1]] ?? null,
  };

  /** The volume, lesion and lung maps for the panes, once an analysis ends (or is cancelled):
   * during it, NiiVue's work on the page's thread and the software GPU would take cores from the
   * model on a small machine. */
  function askMpr() {
    if (!mpr || !vol || ui.mprFigure.hidden) return;
    worker.postMessage({ type: "mpr", id: vol.id, gen: viewGen });
  }

  /** The lesion and lung switches of the axial pane, for the others. */
  const mprShow = () => ({ lesions: ui.overlay.checked, opacity: Number(ui.opacity.value), lung: ui.lungOutline.checked });

  /** The crosshair on the key slice: the lesion pixel nearest the centre of its lesion pixels
   * (on a lesion even when there are several), once the slice's overlay is here. */
  function keyCross(z) {
    const o = vol.views.get(z)?.overlay;
    if (!o) return null;
    let sx = 0, sy = 0, n = 0;
    for (let i = 0; i < o.classes.length; i++) if (o.classes[i]) { sx += i % vol.nx; sy += Math.floor(i / vol.nx); n++; }
    if (!n) return null;
    const [cx, cy] = [sx / n, sy / n];
    let best = null, bestD = Infinity;
    for (let i = 0; i < o.classes.length; i++) {
      if (!o.classes[i]) continue;
      const d = (i % vol.nx - cx) ** 2 + (Math.floor(i / vol.nx) - cy) ** 2;
      if (d < bestD) { bestD = d; best = [i % vol.nx, Math.floor(i / vol.nx)]; }
    }
    return best;
  }

  /** The crosshair over the axial pane (its own layer: the slice's pixels and the PNG export
   * stay the scan's), and the other panes on the same voxel. */
  function drawCross() {
    if (ui.sliceCross.hidden || !vol) return;
    const c = ui.sliceCross;
    if (c.width !== vol.nx) c.width = vol.nx;
    if (c.height !== vol.ny) c.height = vol.ny;
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, c.width, c.height);
    ctx.strokeStyle = "rgba(0, 230, 118, 0.7)"; // green: not a lesion or lung-outline colour
    ctx.lineWidth = Math.max(1, vol.nx / 420);
    const [x, y] = vol.cross;
    ctx.beginPath();
    ctx.moveTo(x + 0.5, 0); ctx.lineTo(x + 0.5, c.height);
    ctx.moveTo(0, y + 0.5); ctx.lineTo(c.width, y + 0.5);
    ctx.stroke();
    doc.body.dataset.cross = `${x},${y},${vol.z}`;
    mpr?.setVoxel([x, y, vol.z]);
  }

  /** Ask the worker for slice z's pixels and overlay of `scan` (the current one unless given;
   * once at a time per slice). */
  function askView(z, scan = vol) {
    if (scan.asked.has(z)) return;
    scan.asked.add(z);
    worker.postMessage({ type: "view", id: scan.id, z, gen: viewGen, which: scan === base ? "baseline" : null });
  }

  /** A slice's pixels in the current window, with the lesions and lung outline as switched. */
  function drawView(canvas, view, nx, ny) {
    const o = view.overlay;
    drawRgba(canvas, composeRgba(windowSlice(view.pixels, vol.win), ui.overlay.checked && o ? o.classes : null,
      Number(ui.opacity.value), ui.lungOutline.checked && o ? o.lung : null, nx), nx, ny);
  }

  function render() {
    if (!vol) return;
    const { nx, ny, nz, z } = vol;
    const s = vol.slices[z];
    const view = vol.views.get(z);
    const current = view && !view.stale && (!s || view.overlay);
    if (!current) askView(z);
    // Whether the canvas shows slice z as analysed so far (the browser tests wait for it).
    doc.body.dataset.drawn = current ? "1" : "0";
    // Until it arrives the canvas keeps what it showed.
    if (view) drawView(ui.slice, view, nx, ny);
    drawCross();
    if (s && s.recon.length) drawRgba(ui.recon, composeRgba(s.recon, null, 0), s.size, s.size);
    else ui.recon.getContext("2d").clearRect(0, 0, ui.recon.width, ui.recon.height); // not analysed or not sampled: no stale image
    ui.reconNote.hidden = !(s && s.has_lung && !s.recon.length);
    const pos = vol.positions_mm[z];
    ui.sliceInfo.textContent = `slice ${z + 1} / ${nz}` + (pos != null ? ` · z = ${pos.toFixed(1)} mm` : "");
    doc.body.dataset.z = String(z);
    ui.wlText.textContent = vol.info.hu ? `W ${Math.round(vol.win.width)} / L ${Math.round(vol.win.level)}` : "8-bit image (no HU)";
    ui.sliceResult.textContent = s
      ? (s.has_lung
        ? `lesion ${s.lesion_px} px (${(100 * s.lesion_px / (nx * ny)).toFixed(1)} % of the slice) · classifier p(COVID-19) ${(s.p_covid ?? 0).toFixed(2)}`
        : "no lung on this slice (not counted)") + (s.ood ? " · out of distribution" : "")
      : "not analysed yet";
    drawStrip(ui.strip, vol.slices, z);
    renderReport();
    ui.followupRow.hidden = !vol.report || !!base || !ui.progressWrap.hidden;
    if (cmp) renderPanes();
  }

  function renderReport() {
    const r = vol?.report;
    if (!r) return;
    ui.results.hidden = false;
    ui.provisional.hidden = !vol.provisional;
    ui.provisional.textContent = vol.provisional || "";
    doc.body.dataset.provisional = vol.provisional ? "1" : "0";
    doc.body.dataset.lungFound = r.lung_found ? "1" : "0";
    ui.nolung.hidden = r.lung_found;
    if (!r.lung_found) {
      // No lung, no verdict: no number stands where the estimate would be.
      ui.nolung.textContent = r.lung_mask_approximate
        ? "No lung was found in this 8-bit image (the lung mask is approximate without Hounsfield units): either it is not a chest slice, or its window or crop hides the lungs. There is no COVID-19 estimate, no severity and no lung or lesion figures."
        : "No lung was found in this scan: it looks like an abdominal or other non-chest scan, so there is no COVID-19 estimate, no severity and no lung or lesion figures. Results are not meaningful for this input.";
      ui.call.textContent = r.call.summary;
      ui.pcovid.textContent = "none (no lung)";
      ui.pbar.style.width = "0%";
      ui.pnote.textContent = "";
      ui.pattern.replaceChildren();
      ui.numbers.textContent = `Severity ${r.severity}.`;
    } else {
      renderEstimate(r);
    }
    ui.ood.hidden = !r.ood && r.ood_slices.length === 0;
    ui.ood.textContent = r.ood
      ? `Warning: ${r.ood_message}.`
      : `${r.ood_slices.length} of ${r.ood_checked} checked slice(s) look unlike the training data (out of distribution); results there may be unreliable.`;
    ui.warnings.replaceChildren(...r.warnings.map((w) => { const li = doc.createElement("li"); li.textContent = w; return li; }));
    doc.body.dataset.skipped = String(r.skipped_files.length);
    ui.meta.textContent = `${r.input} · ${r.dims.join("×")} · model ${r.model} · ${r.backend} · ${vol.ms.toFixed(0)} ms · ${r.disclaimer}`;
    doc.body.dataset.severity = r.severity;
  }

  /** The call (state, p and the features behind it), severity and volumes of a report that found lung. */
  function renderEstimate(r) {
    const c = r.call;
    const p = r.p_covid;
    const f2 = (v) => (v == null ? "n/a" : v.toFixed(2));
    ui.call.textContent = c.summary;
    doc.body.dataset.call = c.state;
    ui.pcovid.textContent = Number.isFinite(p) ? p.toFixed(2) : "none (no call)";
    ui.pbar.style.width = `${(100 * (p || 0)).toFixed(1)}%`;
    ui.pnote.textContent = p == null
      ? "No patient-level call: the figures below cover only what is in the scan."
      : `p(pneumonia) ${f2(c.p_pneumonia)} × p(COVID-19 | pneumonia, pattern) ${f2(c.p_covid_given_pneumonia)}. `
        + (p >= 0.3 && p <= 0.7 ? "The call is uncertain. " : "")
        + "A model estimate from the outlined lesions, not a diagnosis: read the scan."
        + ` (Slice classifier, not validated on scanner CT and no part of the call: ${f2(r.p_covid_classifier)}.)`;
    const f = c.features;
    const share = (v) => (v == null ? "n/a" : `${(100 * v).toFixed(0)} %`);
    const yes = (v) => (v == null ? "n/a" : v ? "yes" : "no");
    const used = (name) => c.evidence.find((e) => e.feature === name);
    const lr = (name) => { const e = used(name); return e ? ` (×${e.likelihood_ratio.toFixed(2)})` : ""; };
    const items = [
      `Infected lung slices: ${f.infected_slices} of ${f.lung_slices}`,
      `Both lungs: ${yes(f.bilateral)}${lr("bilateral")}`,
      `Lesion in the outer third of the lung: ${share(f.peripheral_share)}${lr("peripheral")}`,
      `Ground glass: ${share(f.ggo_share)}${lr("ground-glass predominant")}`,
      `Lung zones involved: ${f.zones_involved == null ? "n/a (fewer than 5 slices)" : `${f.zones_involved} of 6`}${lr("many zones")}`,
      `Separate foci: ${f.foci ?? "n/a"}`,
    ];
    ui.pattern.replaceChildren(...items.map((t) => { const li = doc.createElement("li"); li.textContent = t; return li; }));
    const pct = (v) => (v == null ? "n/a" : `${v.toFixed(1)} %`);
    const inv = r.involvement_pct;
    const amounts = r.lung_ml
      ? `Lung ${(r.lung_ml.left + r.lung_ml.right).toFixed(0)} mL (left ${r.lung_ml.left.toFixed(0)}, right ${r.lung_ml.right.toFixed(0)}); lesions ${r.lesion_ml.total.toFixed(1)} mL (ground-glass ${r.lesion_ml.ggo.toFixed(1)}, consolidation ${r.lesion_ml.consolidation.toFixed(1)}).`
      : `Lung ${r.lung_px.left + r.lung_px.right} px; lesions ${r.lesion_px.total} px (ground-glass ${r.lesion_px.ggo}, consolidation ${r.lesion_px.consolidation}); no physical spacing, so pixels only.`;
    ui.numbers.textContent = `Severity ${r.severity}. Lung involved: ${pct(inv.total)} (left ${pct(inv.left)}, right ${pct(inv.right)}). ${amounts}` +
      (r.lung_mask_approximate ? " Lung mask approximate (8-bit input)." : "");
  }

  const li = (t) => { const e = doc.createElement("li"); e.textContent = t; return e; };

  /** The comparison section: summary, warnings, alignment, change table, plot and panes. */
  function renderCompare() {
    ui.followupRow.hidden = !vol?.report || !!base;
    ui.compare.hidden = !cmp;
    doc.body.dataset.comparing = cmp ? "1" : base ? "pending" : "0";
    if (!cmp) return;
    const c = cmp.data;
    ui.cmpBaseName.textContent = `${c.baseline.input} (${c.dates.baseline ?? "date unknown"})`;
    ui.cmpFuName.textContent = `${c.followup.input} (${c.dates.followup ?? "date unknown"})`;
    ui.cmpSummary.replaceChildren(...c.summary.map(li));
    ui.cmpWarnings.replaceChildren(...c.warnings.map((w) => li(`Warning: ${w}`)));
    const a = c.alignment;
    ui.cmpAlign.textContent = a.z_offset_mm != null
      ? `Aligned by the lungs: the follow-up's level is the baseline's ${a.z_offset_mm >= 0 ? "+" : "−"}${Math.abs(a.z_offset_mm).toFixed(1)} mm (lung seen in both over ${a.overlap_mm.toFixed(0)} mm; profile mismatch ${a.mismatch.toFixed(3)}, 0 = identical). Method: ${a.method}.`
      : `No aligned view: ${a.reason}. The numbers are still compared.`;
    ui.cmpPanes.hidden = a.z_offset_mm == null;
    doc.body.dataset.aligned = a.z_offset_mm == null ? "0" : "1";
    const body = ui.cmpTable.tBodies[0];
    body.replaceChildren(...changeRows(c).map((row) => {
      const tr = doc.createElement("tr");
      for (const cell of row) { const td = doc.createElement("td"); td.textContent = cell; tr.appendChild(td); }
      return tr;
    }));
    ui.cmpDisclaimer.textContent = c.disclaimer;
    renderPanes();
  }

  /** Both scans at the level `cmp.level`, the plot with its marker. */
  function renderPanes() {
    if (!cmp || !base || !vol) return;
    const c = cmp.data, a = c.alignment;
    const o = a.origin_mm;
    const t = o ? cmp.level - o.baseline : null;
    // A profile needs slices with positions along z: none for single slices and PNG/JPEG.
    ui.cmpPlotFig.hidden = c.profiles.baseline.length < 2 && c.profiles.followup.length < 2;
    const plot = drawProfiles(ui.cmpPlot.getContext("2d"), ui.cmpPlot.width, ui.cmpPlot.height, c.profiles, t);
    cmp.plot = plot;
    ui.cmpPlotCap.textContent = c.profiles.aligned
      ? "Lesion share of the lung per level, both scans on the baseline's axis (mm above its lowest slice): blue baseline, orange follow-up; the dashed line is the level shown above. Click to go to a level."
      : "Lesion share of the lung per level, each scan on its own axis (mm above its lowest slice; the scans could not be aligned): blue baseline, orange follow-up.";
    if (a.z_offset_mm == null) return;
    const zb = nearestSlice(base.positions_mm, cmp.level);
    const zf = nearestSlice(vol.positions_mm, followupZ(a, cmp.level));
    base.paneZ = zb; vol.paneZ = zf;
    doc.body.dataset.cmpZ = `${zb ?? "-"},${zf ?? "-"}`;
    let drawn = 0;
    for (const [scan, z, canvas, cap, name] of [[base, zb, ui.cmpBase, ui.cmpBaseCap, "baseline"], [vol, zf, ui.cmpFu, ui.cmpFuCap, "follow-up"]]) {
      if (z == null) {
        canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
        cap.textContent = `${name}: this level is outside the scan`;
        drawn++;
        continue;
      }
      const view = scan.views.get(z);
      if (!view || view.stale || !view.overlay) askView(z, scan);
      if (view) {
        drawView(canvas, view, scan.nx, scan.ny);
        if (view.overlay) drawn++;
      }
      const s = c[name === "baseline" ? "baseline" : "followup"].slices.find((r) => r.z === z);
      cap.textContent = `${name}: slice ${z + 1} / ${scan.nz} · z = ${scan.positions_mm[z].toFixed(1)} mm` + (s ? ` · lesion ${s.lung_px ? (100 * s.lesion_px / s.lung_px).toFixed(1) : "0.0"} % of the lung` : "");
    }
    doc.body.dataset.cmpDrawn = drawn === 2 ? "1" : "0";
  }

  /** Move the comparison's level by `steps` slices of the finer scan. */
  function stepLevel(steps) {
    if (!cmp || !base || !vol) return;
    const r = levelRange(cmp.data.alignment, base.positions_mm, vol.positions_mm);
    if (!r) return;
    cmp.level = Math.max(r.lo, Math.min(r.hi, cmp.level + steps * r.step));
    renderPanes();
  }

  async function analyseFiles(fileList) {
    ui.error.hidden = true;
    // Hidden files (.DS_Store, ._*) are left out; everything else goes, and what is not an image
    // is listed as skipped. The File handles go, not their bytes: the worker reads them one by
    // one, so the series is never held in the page.
    const files = [...fileList].filter((f) => !/^\./.test(f.name));
    if (!files.length) { showError("No files to read."); return; }
    vol = null; base = null; cmp = null;
    renderCompare();
    worker.postMessage({ type: "load", files, batch: urlBatch() });
  }

  /** Keep the analysed scan as the baseline and analyse `fileList` as its follow-up. */
  function addFollowup(fileList) {
    ui.error.hidden = true;
    const files = [...fileList].filter((f) => !/^\./.test(f.name));
    if (!files.length) { showError("No files to read."); return; }
    if (!vol?.report || !ui.progressWrap.hidden) { showError("Analyse the first scan to the end (or cancel it) before adding a follow-up."); return; }
    base = vol; vol = null; cmp = null;
    base.paneZ = null;
    renderCompare();
    worker.postMessage({ type: "load", files, batch: urlBatch(), followup: true });
  }

  ui.file.addEventListener("change", () => { if (ui.file.files.length) analyseFiles([...ui.file.files]); ui.file.value = ""; });
  ui.folder.addEventListener("change", () => { if (ui.folder.files.length) analyseFiles([...ui.folder.files]); ui.folder.value = ""; });
  ui.fuFile.addEventListener("change", () => { if (ui.fuFile.files.length) addFollowup([...ui.fuFile.files]); ui.fuFile.value = ""; });
  ui.fuFolder.addEventListener("change", () => { if (ui.fuFolder.files.length) addFollowup([...ui.fuFolder.files]); ui.fuFolder.value = ""; });
  ui.demo.addEventListener("click", () => { ui.error.hidden = true; vol = null; base = null; cmp = null; renderCompare(); worker.postMessage({ type: "demo", batch: urlBatch() }); });
  ui.cancel.addEventListener("click", () => worker.postMessage({ type: "cancel" }));
  ui.drop.addEventListener("dragover", (e) => { e.preventDefault(); ui.drop.classList.add("hover"); });
  ui.drop.addEventListener("dragleave", () => ui.drop.classList.remove("hover"));
  ui.drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    ui.drop.classList.remove("hover");
    const entries = [...(e.dataTransfer.items || [])].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
    const files = entries.length ? (await Promise.all(entries.map(entryFiles))).flat() : [...e.dataTransfer.files];
    if (files.length) analyseFiles(files);
  });
  const switched = () => { mpr?.setShow(mprShow()); render(); };
  ui.overlay.addEventListener("change", switched);
  ui.lungOutline.addEventListener("change", switched);
  ui.opacity.addEventListener("input", switched);
  const setWindow = (win) => { if (vol) { vol.win = win; mpr?.setWindow(win); render(); } };
  ui.wlLung.addEventListener("click", () => setWindow({ ...PRESETS.lung }));
  ui.wlMed.addEventListener("click", () => setWindow({ ...PRESETS.mediastinum }));

  // Scrolling: wheel on the slice, keys when the slice has focus.
  ui.sliceFigure.addEventListener("wheel", (e) => { if (!vol) return; e.preventDefault(); setSlice(vol.z + Math.sign(e.deltaY)); }, { passive: false });
  ui.sliceFigure.addEventListener("keydown", (e) => {
    if (!vol) return;
    const page = Math.max(1, Math.round(vol.nz / 10));
    const step = { ArrowUp: -1, ArrowDown: 1, PageUp: -page, PageDown: page }[e.key];
    if (step !== undefined) setSlice(vol.z + step);
    else if (e.key === "Home") setSlice(0);
    else if (e.key === "End") setSlice(vol.nz - 1);
    else return;
    e.preventDefault();
  });
  // Right-drag: horizontal = width, vertical = level.
  let drag = null;
  ui.slice.addEventListener("contextmenu", (e) => e.preventDefault());
  ui.slice.addEventListener("mousedown", (e) => { if (e.button === 2 && vol?.info.hu) drag = { x: e.clientX, y: e.clientY, win: { ...vol.win } }; });
  doc.addEventListener("mousemove", (e) => {
    if (!drag || !vol) return;
    vol.win = { width: Math.max(1, drag.win.width + 4 * (e.clientX - drag.x)), level: drag.win.level + 2 * (e.clientY - drag.y) };
    render();
  });
  doc.addEventListener("mouseup", () => { if (drag && vol) mpr?.setWindow(vol.win); drag = null; });
  // The 3-D view on request: a second WebGL context, slow to draw on a software GPU.
  ui.show3d.addEventListener("click", () => {
    if (!mpr) return;
    ui.show3dWrap.hidden = true;
    ui.renderPane.hidden = false;
    mpr.show3d(ui.render3d).then(() => { doc.body.dataset.render3d = String(Number(doc.body.dataset.render3d || 0) + 1); });
  });
  // A left click on the axial slice moves the crosshair there: the other panes follow.
  ui.slice.addEventListener("click", (e) => {
    if (!vol || ui.sliceCross.hidden) return;
    const rect = ui.slice.getBoundingClientRect();
    const x = Math.floor(((e.clientX - rect.left) / rect.width) * vol.nx);
    const y = Math.floor(((e.clientY - rect.top) / rect.height) * vol.ny);
    vol.cross = [Math.max(0, Math.min(vol.nx - 1, x)), Math.max(0, Math.min(vol.ny - 1, y))];
    render();
  });
  // Keys on the reformats move their planes: up/down the coronal (front/back), left/right the
  // sagittal; the wheel scrolls the pane under the pointer (NiiVue's own).
  ui.mprFigure.addEventListener("keydown", (e) => {
    if (!vol) return;
    const d = { ArrowUp: [0, -1], ArrowDown: [0, 1], ArrowLeft: [-1, 0], ArrowRight: [1, 0] }[e.key];
    if (!d) return;
    vol.cross = [Math.max(0, Math.min(vol.nx - 1, vol.cross[0] + d[0])), Math.max(0, Math.min(vol.ny - 1, vol.cross[1] + d[1]))];
    render();
    e.preventDefault();
  });
  ui.strip.addEventListener("click", (e) => {
    if (!vol) return;
    const rect = ui.strip.getBoundingClientRect();
    setSlice(Math.floor(((e.clientX - rect.left) / rect.width) * vol.nz));
  });

  ui.dlMask.addEventListener("click", () => worker.postMessage({ type: "export-mask" }));
  ui.dlSeg.addEventListener("click", () => worker.postMessage({ type: "export-seg" }));
  ui.dlPng.addEventListener("click", () => ui.slice.toBlob((b) => b && download(doc, b, `${baseName()}-slice${vol ? vol.z + 1 : 0}.png`)));
  ui.dlJson.addEventListener("click", () => vol?.reportText && download(doc, new Blob([vol.reportText], { type: "application/json" }), `${baseName()}-report.json`));
  ui.print.addEventListener("click", () => window.print());

  // The comparison: both panes scroll together; the plot jumps to a level.
  for (const fig of [ui.cmpBaseFig, ui.cmpFuFig]) {
    fig.addEventListener("wheel", (e) => { if (!cmp) return; e.preventDefault(); stepLevel(-Math.sign(e.deltaY)); }, { passive: false });
    fig.addEventListener("keydown", (e) => {
      const step = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[e.key];
      if (step === undefined || !cmp) return;
      stepLevel(step);
      e.preventDefault();
    });
  }
  ui.cmpPlot.addEventListener("click", (e) => {
    const p = cmp?.plot, o = cmp?.data.alignment.origin_mm;
    if (!p || !o) return;
    const rect = ui.cmpPlot.getBoundingClientRect();
    const x = ((e.clientX - rect.left) / rect.width) * ui.cmpPlot.width;
    cmp.level = o.baseline + p.x0 + ((x - p.left) / (p.right - p.left)) * (p.x1 - p.x0);
    renderPanes();
  });
  ui.cmpSwap.addEventListener("click", () => {
    if (!cmp || !base || !vol) return;
    // Views asked for before the swap are dropped on arrival (another generation): ask again.
    viewGen++; base.asked.clear(); vol.asked.clear();
    worker.postMessage({ type: "swap" });
  });
  ui.cmpClose.addEventListener("click", () => { base = null; cmp = null; worker.postMessage({ type: "close-compare" }); renderCompare(); });
  ui.cmpJson.addEventListener("click", () => cmp && download(doc, new Blob([cmp.text], { type: "application/json" }), `${baseName()}-change-report.json`));
  ui.cmpPrint.addEventListener("click", () => {
    doc.body.classList.add("print-compare");
    window.print();
    doc.body.classList.remove("print-compare");
  });

  startWorker();
  // Offline after one visit (not on file:// or where service workers are unavailable).
  if ("serviceWorker" in navigator && location.protocol.startsWith("http")) {
    navigator.serviceWorker.register("sw.js").catch((e) => console.warn("service worker:", e));
  }
}
