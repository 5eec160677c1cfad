// Memory benchmark: what a long series costs the tab. Drops a DICOM series on the built page
// (CPU path, the page's own pool size) and samples the browser's memory every 200 ms until the
// final report: RSS and PSS summed over every process of this browser (PSS counts shared pages
// once; RSS is what the figures used), and each worker's wasm memory as reported.
//
//   node tests/e2e/memory.mjs SERIES_DIR [SERIES_DIR...]      (after scripts/build-web.sh)
//
// CTSCREEN_MEM_NO_WEBGL=1 runs it without WebGL (no multiplanar viewer), for the difference;
// CTSCREEN_MEM_3D=1 also opens the 3-D view once the reformats are drawn.
// Long series are made by tiling a shared one: python3 scripts/tile-series.py. Figures go to
// BENCHMARKS.md by hand. CTSCREEN_DIST=DIR serves another build (e.g. the one before a change).
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dist = process.env.CTSCREEN_DIST || path.join(root, "dist");
const port = 20000 + Math.floor(Math.random() * 1000);
const server = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dist], { stdio: "ignore" });
const origin = `http://127.0.0.1:${port}`;
await new Promise((r) => setTimeout(r, 800));

/** Every process under `rootPid` (the browser and its renderers, GPU and utility processes). */
function descendants(rootPid) {
  const children = new Map();
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(d));
    } catch { /* gone */ }
  }
  const out = [];
  const stack = [rootPid];
  while (stack.length) { const p = stack.pop(); out.push(p); stack.push(...(children.get(p) || [])); }
  return out;
}

/** The browser's main process: the chromium whose command line names our profile. */
function browserPid(userDir) {
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      if (cmd.includes(userDir) && !cmd.includes("--type=")) return Number(d);
    } catch { /* gone */ }
  }
  throw new Error("browser process not found");
}

/** RSS and PSS in MB summed over the processes. */
function memory(pids) {
  let rss = 0, pss = 0;
  for (const p of pids) {
    try {
      const s = fs.readFileSync(`/proc/${p}/smaps_rollup`, "utf8");
      rss += Number(/^Rss:\s+(\d+)/m.exec(s)?.[1] || 0);
      pss += Number(/^Pss:\s+(\d+)/m.exec(s)?.[1] || 0);
    } catch { /* gone */ }
  }
  return { rssMB: rss / 1024, pssMB: pss / 1024 };
}

async function measure(dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".dcm")).sort().map((f) => path.join(dir, f));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-mem-"));
  const args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"];
  // CTSCREEN_MEM_NO_WEBGL=1: a browser without WebGL, so the page shows the axial pane alone
  // (what the multiplanar viewer adds is the difference between the two runs).
  if (process.env.CTSCREEN_MEM_NO_WEBGL === "1") args.push("--disable-webgl");
  const ctx = await chromium.launchPersistentContext(userDir, { executablePath: "/usr/bin/chromium", headless: true, args, env: { ...process.env, XDG_RUNTIME_DIR: userDir } });
  const page = await ctx.newPage();
  await page.goto(`${origin}/?backend=cpu`);
  await page.waitForSelector("body[data-ready='1']", { timeout: 300000 });
  await new Promise((r) => setTimeout(r, 2000));
  const pid = browserPid(userDir);
  const before = memory(descendants(pid));
  let peak = { ...before }, peakLoaded = null;
  let loaded = false;
  const timer = setInterval(() => {
    const m = memory(descendants(pid));
    peak = { rssMB: Math.max(peak.rssMB, m.rssMB), pssMB: Math.max(peak.pssMB, m.pssMB) };
    if (loaded && !peakLoaded) peakLoaded = { ...peak };
  }, 200);
  const t0 = Date.now();
  await page.setInputFiles("#file", files);
  await page.waitForFunction(() => Number(document.body.dataset.slices || 0) > 0 || document.querySelector("#error:not([hidden])"), null, { timeout: 1800000 });
  loaded = true;
  const loadS = (Date.now() - t0) / 1000;
  const refused = await page.evaluate(() => { const e = document.querySelector("#error:not([hidden])"); return e ? e.textContent : null; });
  if (!refused) await page.waitForSelector("body[data-analyses='1']", { timeout: 3600000 });
  // The multiplanar viewer's copies (HU, then the lesion and lung maps after the report), when
  // the page shows it: measured to the end of their loading.
  const mpr = await page.evaluate(() => document.body.dataset.mpr === "1");
  if (!refused && mpr) {
    await page.waitForFunction(() => Number(document.body.dataset.mprLoaded || 0) >= 1, null, { timeout: 600000 });
    if (process.env.CTSCREEN_MEM_3D === "1") {
      await page.click("#show3d");
      await page.waitForFunction(() => Number(document.body.dataset.render3d || 0) >= 1, null, { timeout: 600000 });
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  clearInterval(timer);
  const after = memory(descendants(pid));
  const out = {
    series: path.basename(dir), slices: files.length, refused, loadS, totalS: (Date.now() - t0) / 1000,
    mpr, beforeMB: before, peakMB: peak, peakAtLoadMB: peakLoaded, afterMB: after,
    workerWasmMB: Number(await page.evaluate(() => document.body.dataset.wasmMem || 0)) / 2 ** 20,
    deviceMemoryGB: await page.evaluate(() => navigator.deviceMemory ?? null),
    p: await page.evaluate(() => window.ctscreenTimings?.summary?.p_covid ?? null),
  };
  await ctx.close();
  return out;
}

try {
  for (const dir of process.argv.slice(2)) console.log(JSON.stringify(await measure(dir)));
} finally {
  server.kill();
}
