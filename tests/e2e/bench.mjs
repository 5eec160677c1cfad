// Browser benchmark: drives the page in headless Chromium on WebGPU (SwiftShader here) and on the
// CPU fallback, and prints per-slice latency (cold = first slice incl. shader compilation, warm =
// median of the rest), whole-volume time for the 32-slice demo phantom, time from dropping one
// slice to its result, and the bytes the page transfers. Usage: node tests/e2e/bench.mjs
// (after scripts/build-web.sh). Figures go to BENCHMARKS.md by hand; compare ratios within a run.
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dist = process.env.CTSCREEN_DIST || path.join(root, "dist");
const slice = path.resolve(root, "../shared/data/medseg-covid/train/images/0.jpg");
const port = 19000 + Math.floor(Math.random() * 1000);
const server = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dist], { stdio: "ignore" });
const origin = `http://127.0.0.1:${port}`;
await new Promise((r) => setTimeout(r, 800));
// CTSCREEN_MODEL=v1: the first model (`?model=v1`; the default is v2), to compare models within one build and run.
const modelQuery = process.env.CTSCREEN_MODEL === "v1" ? "model=v1" : "";
const withQuery = (url, ...parts) => { const q = [...parts, modelQuery].filter(Boolean).join("&"); return q ? `${url}?${q}` : url; };
const median = (v) => { const s = [...v].sort((a, b) => a - b); return s.length ? s[Math.floor(s.length / 2)] : NaN; };

async function run(mode) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-bench-"));
  const args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"];
  if (mode === "webgpu") args.push("--enable-unsafe-webgpu");
  const ctx = await chromium.launchPersistentContext(userDir, { executablePath: "/usr/bin/chromium", headless: true, args, env: { ...process.env, XDG_RUNTIME_DIR: userDir } });
  const page = await ctx.newPage();
  // Bytes served for every same-origin URL the page and its worker asked for (once per URL; the
  // worker's fetches reach the context, not the page; sizes from dist/, as the server sends them
  // uncompressed).
  const urls = new Set();
  ctx.on("request", (r) => { if (r.url().startsWith(origin)) urls.add(new URL(r.url()).pathname); });
  const t0 = Date.now();
  // CTSCREEN_BATCH=N: slices per model call (`?batch=N`), to compare batch sizes in one build.
  await page.goto(withQuery(origin + "/", process.env.CTSCREEN_BATCH ? `batch=${process.env.CTSCREEN_BATCH}` : ""));
  await page.waitForSelector("body[data-ready='1']", { timeout: 300000 });
  const readyS = (Date.now() - t0) / 1000;
  const out = { mode, model: process.env.CTSCREEN_MODEL || "default", batch: process.env.CTSCREEN_BATCH || "default", backend: await page.evaluate(() => document.body.dataset.backend), readyS };
  let n = 0;
  // On a software WebGPU adapter a slice takes seconds: there, 8 slices per run, then Cancel.
  const limit = mode === "webgpu" ? 8 : 32;
  for (const label of ["cold", "warm"]) {
    await page.evaluate(() => { document.body.dataset.done = "0"; document.body.dataset.slices = ""; });
    await page.click("#demo");
    await page.waitForFunction((k) => document.body.dataset.slices === "32" && Number(document.body.dataset.done || 0) >= Math.min(k, Number(document.body.dataset.run)), limit, { timeout: 900000 });
    if (limit < 32) await page.click("#cancel");
    await page.waitForSelector(`body[data-analyses='${++n}']`, { timeout: 600000 });
    const t = await page.evaluate(() => window.ctscreenTimings);
    out[label] = { firstSliceMs: t.sliceMs[0], medianSliceMs: median(t.sliceMs.slice(1)), volumeMs: t.totalMs,
      lungMaskAndReportMs: t.reportMs, loadMs: t.loadMs, slices: t.sliceMs.length };
  }
  // Load times in wasm for the synthetic 512²×300 inputs of `ctscreen bench-volume --keep-inputs DIR`
  // (CPU path only; the run is cancelled right after loading).
  const inputs = process.env.CTSCREEN_BENCH_INPUTS;
  if (inputs && mode === "cpu") {
    out.loads = {};
    const series = fs.readdirSync(path.join(inputs, "series")).sort().map((f) => path.join(inputs, "series", f));
    for (const [label, files] of [["dicom series 512²×300", series], ["nii 512²×300", [path.join(inputs, "phantom.nii")]], ["nii.gz 512²×300", [path.join(inputs, "phantom.nii.gz")]]]) {
      await page.evaluate(() => { document.body.dataset.slices = ""; });
      await page.setInputFiles("#file", files);
      await page.waitForFunction(() => document.body.dataset.slices === "300", null, { timeout: 300000 });
      await page.click("#cancel");
      await page.waitForSelector(`body[data-analyses='${++n}']`, { timeout: 300000 });
      out.loads[label] = await page.evaluate(() => window.ctscreenTimings.loadMs);
    }
  }
  const tDrop = Date.now();
  await page.setInputFiles("#file", slice);
  await page.waitForSelector(`body[data-analyses='${++n}']`, { timeout: 300000 });
  out.dropToResultS = (Date.now() - tDrop) / 1000;
  out.transferredMB = [...urls].map((u) => path.join(dist, u === "/" ? "index.html" : decodeURIComponent(u)))
    .filter((f) => fs.existsSync(f) && fs.statSync(f).isFile())
    .reduce((a, f) => a + fs.statSync(f).size, 0) / 1e6;
  await ctx.close();
  return out;
}

/**
 * A real whole volume end to end on the CPU path with a pool of `workers` (`?backend=cpu&workers=N`;
 * 0 = the size the page picks): the RICORD COVID-19 series, 255 × 512², JPEG Lossless. Time from
 * the volume being read to the first provisional estimate and to the final report.
 */
async function runVolume(workers, reconEvery = 0, quick = true) {
  const dir = path.resolve(root, "../shared/data/ct-files/ricord-1a-covid-000082");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".dcm")).sort().map((f) => path.join(dir, f));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-bench-"));
  const args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"];
  const ctx = await chromium.launchPersistentContext(userDir, { executablePath: "/usr/bin/chromium", headless: true, args, env: { ...process.env, XDG_RUNTIME_DIR: userDir } });
  const page = await ctx.newPage();
  await page.goto(withQuery(origin + "/", "backend=cpu", workers ? `workers=${workers}` : "", reconEvery ? `reconevery=${reconEvery}` : "", quick ? "" : "quick=0"));
  await page.waitForFunction(() => Number(document.body.dataset.workers || 0) >= 1, null, { timeout: 300000 });
  const pool = Number(await page.evaluate(() => document.body.dataset.workers));
  const workerMB = Number(await page.evaluate(() => document.body.dataset.workerMb));
  const tDrop = Date.now();
  await page.setInputFiles("#file", files);
  await page.waitForFunction(() => Number(document.body.dataset.provisionalSeen || 0) >= 1, null, { timeout: 1800000, polling: 50 });
  const dropToFirstEstimateS = (Date.now() - tDrop) / 1000;
  await page.waitForSelector("body[data-analyses='1']", { timeout: 1800000 });
  const dropToReportS = (Date.now() - tDrop) / 1000;
  const t = await page.evaluate(() => window.ctscreenTimings);
  await ctx.close();
  return {
    volume: "ricord-1a-covid-000082 (255 x 512^2)", requestedWorkers: workers || "page's choice", workers: pool, workerMB,
    reconstruction: reconEvery ? `every ${reconEvery}` : "the page's sample", quickEstimate: quick, oodChecked: t.oodChecked,
    loadS: t.loadMs / 1000, firstProvisionalS: t.firstProvisionalMs / 1000, finalS: t.finalMs / 1000,
    analysisS: t.totalMs / 1000, lungMaskAndReportS: t.reportMs / 1000, ownerMs: t.ownerMs, dropToFirstEstimateS, dropToReportS, slices: t.sliceMs.length,
    medianWorkerSliceMs: median(t.sliceMs), report: t.summary,
  };
}

try {
  // CTSCREEN_VOLUME_WORKERS=1,2,0: the whole-volume runs (0 = the page's choice); empty: none.
  // CTSCREEN_VOLUME_RECON=1,0: each of them with the reconstruction on every N-th slice
  // (`?reconevery=N`; 0 = the page's sample), to compare within one run.
  // CTSCREEN_VOLUME_QUICK=1,0: with and without the quick first estimate (`?quick=0`).
  for (const w of (process.env.CTSCREEN_VOLUME_WORKERS || "").split(",").filter((x) => x !== "")) {
    for (const r of (process.env.CTSCREEN_VOLUME_RECON || "0").split(",").filter((x) => x !== "")) {
      for (const q of (process.env.CTSCREEN_VOLUME_QUICK || "1").split(",").filter((x) => x !== "")) {
        console.log(JSON.stringify(await runVolume(Number(w), Number(r), q !== "0")));
      }
    }
  }
  for (const mode of (process.env.CTSCREEN_MODES ?? "webgpu,cpu").split(",").filter(Boolean)) console.log(JSON.stringify(await run(mode)));
} finally {
  server.kill();
}
