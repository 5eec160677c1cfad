// End-to-end test of the static page in headless Debian Chromium, driven by playwright-core.
// Runs every case twice: (1) WebGPU on Chromium's SwiftShader adapter, (2) WebGPU disabled, so
// the page falls back to the CPU (flex) backend. Prints "N passed, N failed".
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import { execFileSync } from "node:child_process";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const dist = path.join(root, "dist");
const data = path.resolve(root, "../shared/data");
const outDir = path.join(root, "target-e2e");
fs.mkdirSync(outDir, { recursive: true });

let passed = 0, failed = 0;
function check(name, ok, detail = "") {
  if (ok) { passed++; console.log(`ok   ${name}`); }
  else { failed++; console.log(`FAIL ${name} ${detail}`); }
}

if (!fs.existsSync(path.join(data, "medseg-covid/train/images"))) {
  if (process.env.CI === "true") { console.error(`CI=true but ${data} is missing`); process.exit(1); }
  console.log(`!!! SKIPPING browser tests: ${data} not found !!!`);
  process.exit(0);
}
if (!fs.existsSync(path.join(dist, "index.html"))) {
  console.error("dist/ is missing: run scripts/build-web.sh first"); process.exit(1);
}

const port = 18000 + Math.floor(Math.random() * 1000);
const server = spawn("python3", ["-m", "http.server", String(port), "--bind", "127.0.0.1", "--directory", dist], { stdio: "ignore" });
const origin = `http://127.0.0.1:${port}`;
await new Promise((r) => setTimeout(r, 800));

const slice = path.join(data, "medseg-covid/train/images/0.jpg");
const slice2 = path.join(data, "medseg-covid/train/images/1.jpg");
const seriesDir = path.join(data, "ct-files/totalsegmentator/example_ct_dicom");
const seriesFiles = fs.readdirSync(seriesDir).sort().map((f) => path.join(seriesDir, f));
// The CLI's report for the same series, to compare with the page's (same pipeline, same model).
const targetDir = process.env.CARGO_TARGET_DIR || "/work/target";
const cli = [path.join(targetDir, "fast/ctscreen"), path.join(targetDir, "debug/ctscreen")].find((p) => fs.existsSync(p));
let cliReport = null, cliSbu = null;
const sbuSlice = path.join(data, "ct-files/sbu-covid-dicom/A002304/axial/19001231-076.dcm");
if (cli) {
  const analyze = (p) => JSON.parse(execFileSync(cli, ["analyze", p, "--json", "--model", path.join(root, "models/ctscreen-v2")], { cwd: root, maxBuffer: 1 << 26 }).toString());
  cliReport = analyze(seriesDir);
  cliSbu = analyze(sbuSlice);
} else {
  console.log("note: no native ctscreen binary found; the page-vs-CLI report check is skipped");
}
const maskPath = path.join(data, "medseg-covid/train/masks-binary/0.png");
const lidcDir = path.join(data, "ct-files/lidc-minimal-header");
// The fuzz findings of ../shared/fuzz-findings, as kept in the repository (the 3 KB one is
// dicom-oom-unknown-vr-4gb.dcm there).
const findingsDir = path.join(root, "tests/fuzz-regressions");
/** Whether `buf` holds `uid` as a whole UID value (not the prefix of a longer one). */
function hasUid(buf, uid) {
  for (let i = buf.indexOf(uid); i >= 0; i = buf.indexOf(uid, i + 1)) {
    const next = buf[i + uid.length];
    if (next === undefined || !(next === 0x2e || (next >= 0x30 && next <= 0x39))) return true;
  }
  return false;
}
const overlays = {};

/** Pixels of an element's screenshot (WebGL canvases are read this way: their drawing buffer is
 * not kept), decoded in the page: [{w, h, px}] with px RGBA. */
async function shotPixels(page, selector) {
  const png = await page.locator(selector).screenshot();
  return page.evaluate(async (b64) => {
    const bmp = await createImageBitmap(new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))], { type: "image/png" }));
    const c = new OffscreenCanvas(bmp.width, bmp.height);
    const ctx = c.getContext("2d");
    ctx.drawImage(bmp, 0, 0);
    return { w: bmp.width, h: bmp.height, px: [...ctx.getImageData(0, 0, bmp.width, bmp.height).data] };
  }, png.toString("base64"));
}
/** Lesion-coloured pixels (yellow or red: strong red, little blue) in a box around (x, y),
 * leaving out the crosshair's own row and column. */
function lesionNear(img, x, y, r = 8) {
  let n = 0;
  for (let dy = -r; dy <= r; dy++) {
    for (let dx = -r; dx <= r; dx++) {
      if (Math.abs(dx) < 2 || Math.abs(dy) < 2) continue;
      const px = Math.round(x + dx), py = Math.round(y + dy);
      if (px < 0 || py < 0 || px >= img.w || py >= img.h) continue;
      const i = 4 * (py * img.w + px);
      n += img.px[i] > 150 && img.px[i] - img.px[i + 2] > 90;
    }
  }
  return n;
}

/** Issue 21: the coronal, sagittal and 3-D panes of the analysed demo. The crosshair opens on
 * a lesion of the key slice; the reformats must show that lesion where their own geometry puts
 * the crosshair's voxel, oriented as the axial pane (patient left on screen right, head up,
 * front to the right of the sagittal), linked both ways, and the 3-D view must draw. */
async function checkMpr(page, mode) {
  await page.waitForFunction(() => Number(document.body.dataset.mprLoaded || 0) >= 1, null, { timeout: 120000 });
  await page.waitForTimeout(500);
  const cross = await page.evaluate(() => window.ctscreenMpr.cross());
  const cls = await page.evaluate((v) => window.ctscreenMpr.classAt(v), cross);
  const at = (v) => page.evaluate((v) => window.ctscreenMpr.locate(v), v);
  const loc = await at(cross);
  const img = await shotPixels(page, "#mpr");
  const cor = lesionNear(img, loc.coronal.x, loc.coronal.y), sag = lesionNear(img, loc.sagittal.x, loc.sagittal.y);
  check(`${mode}: the crosshair opens on a lesion of the key slice, and the coronal and sagittal panes show lesion there (${cor} and ${sag} lesion pixels around it; voxel ${cross}, class ${cls})`,
    cls > 0 && cor >= 4 && sag >= 4);
  await page.uncheck("#overlay");
  await page.waitForTimeout(300);
  const off = await shotPixels(page, "#mpr");
  const corOff = lesionNear(off, loc.coronal.x, loc.coronal.y), sagOff = lesionNear(off, loc.sagittal.x, loc.sagittal.y);
  await page.check("#overlay");
  check(`${mode}: "Show lesions" off clears them from the reformats too (${corOff}, ${sagOff} left)`, corOff === 0 && sagOff === 0);
  // The lung outline, switched as in the axial pane.
  const lungPx = (img) => { let n = 0; for (let i = 0; i < img.px.length; i += 4) n += Math.abs(img.px[i] - 79) < 12 && Math.abs(img.px[i + 1] - 195) < 12 && Math.abs(img.px[i + 2] - 247) < 12; return n; };
  await page.check("#lung-outline");
  await page.waitForTimeout(300);
  const lungOn = lungPx(await shotPixels(page, "#mpr"));
  await page.uncheck("#lung-outline");
  await page.waitForTimeout(300);
  const lungOff = lungPx(await shotPixels(page, "#mpr"));
  check(`${mode}: "Show lung outline" outlines the lungs in the reformats (${lungOn} px on, ${lungOff} off)`, lungOn > 200 && lungOff < 20);
  // Orientation: the patient's left (canonical x up) to the right, head (z up) up in the coronal;
  // front (y down) to the right in the sagittal, head up.
  const [x, y, z] = cross;
  const dx = await at([Math.max(0, x - 20), y, z]), dz = await at([x, y, Math.max(0, z - 4)]), dy = await at([x, Math.max(0, y - 20), z]);
  check(`${mode}: the reformats are oriented as the axial pane (coronal x ${dx.coronal.x.toFixed(0)}<${loc.coronal.x.toFixed(0)}, y ${dz.coronal.y.toFixed(0)}>${loc.coronal.y.toFixed(0)}; sagittal x ${dy.sagittal.x.toFixed(0)}>${loc.sagittal.x.toFixed(0)}, y ${dz.sagittal.y.toFixed(0)}>${loc.sagittal.y.toFixed(0)})`,
    dx.coronal.x < loc.coronal.x && dz.coronal.y > loc.coronal.y && dy.sagittal.x > loc.sagittal.x && dz.sagittal.y > loc.sagittal.y);
  // Linked both ways: a click in the coronal pane moves the axial slice and its crosshair.
  const target = [Math.max(0, x - 30), y, Math.max(0, z - 3)];
  const tl = await at(target);
  const box = await page.locator("#mpr").boundingBox();
  await page.mouse.click(box.x + tl.coronal.x, box.y + tl.coronal.y);
  await page.waitForFunction((t) => { const c = window.ctscreenMpr.cross(); return Math.abs(c[0] - t[0]) <= 1 && Math.abs(c[2] - t[2]) <= 1; }, target, { timeout: 10000 }).catch(() => {});
  const moved = await page.evaluate(() => window.ctscreenMpr.cross());
  const zShown = Number(await page.evaluate(() => document.body.dataset.z));
  check(`${mode}: a click in the coronal pane moves the crosshair and the axial slice (${moved} for ${target}, slice ${zShown})`,
    Math.abs(moved[0] - target[0]) <= 1 && moved[1] === y && Math.abs(moved[2] - target[2]) <= 1 && zShown === moved[2]);
  // Right-drag in a reformat windows every pane (the axial one reads the same W/L).
  const wl0 = await page.textContent("#wl-text");
  await page.mouse.move(box.x + tl.coronal.x, box.y + tl.coronal.y);
  await page.mouse.down({ button: "right" });
  await page.mouse.move(box.x + tl.coronal.x + 40, box.y + tl.coronal.y + 25, { steps: 5 });
  await page.mouse.up({ button: "right" });
  await page.waitForTimeout(300);
  const wl1 = await page.textContent("#wl-text");
  await page.click("#wl-lung");
  check(`${mode}: right-drag in a reformat changes the window of every pane ("${wl0}" → "${wl1}")`, wl1 !== wl0 && /^W \d+ \/ L -?\d+$/.test(wl1));
  // The wheel over the sagittal pane scrolls it: left-right, the axial crosshair follows.
  const sl = await at(moved);
  await page.mouse.move(box.x + sl.sagittal.x + 15, box.y + sl.sagittal.y + 15);
  await page.mouse.wheel(0, 120);
  await page.waitForFunction((m) => window.ctscreenMpr.cross()[0] !== m[0], moved, { timeout: 5000 }).catch(() => {});
  const wheeled = await page.evaluate(() => window.ctscreenMpr.cross());
  check(`${mode}: the wheel over the sagittal pane moves its plane and the axial crosshair (${moved} → ${wheeled})`,
    wheeled[0] !== moved[0] && Math.abs(wheeled[0] - moved[0]) <= 3 && wheeled[1] === moved[1] && wheeled[2] === moved[2]);
  // And the axial pane's click moves the reformats' planes.
  const sBox = await page.locator("#slice").boundingBox();
  const nx = await page.evaluate(() => Number(document.getElementById("slice").width));
  await page.mouse.click(sBox.x + ((x + 0.5) / nx) * sBox.width, sBox.y + ((y + 0.5) / nx) * sBox.height);
  const back = await page.evaluate(() => window.ctscreenMpr.cross());
  const loc2 = await at(back);
  check(`${mode}: a click in the axial pane moves the reformats' crosshair (${back})`,
    Math.abs(back[0] - x) <= 1 && Math.abs(back[1] - y) <= 1 && Math.abs(loc2.coronal.x - loc.coronal.x) < 3);
  // The 3-D view is drawn on request only.
  check(`${mode}: the 3-D view waits for its button (canvas hidden, button enabled)`,
    await page.isHidden("#render3d") && await page.isEnabled("#show3d"));
  await page.click("#show3d");
  await page.waitForFunction(() => Number(document.body.dataset.render3d || 0) >= 1, null, { timeout: 60000 });
  await page.waitForTimeout(500);
  const r3 = await shotPixels(page, "#render3d");
  let lit = 0, lesion = 0;
  for (let i = 0; i < r3.px.length; i += 4) {
    lit += r3.px[i] + r3.px[i + 1] + r3.px[i + 2] > 30;
    lesion += r3.px[i] > 150 && r3.px[i] - r3.px[i + 2] > 90;
  }
  check(`${mode}: the 3-D view draws the lungs and lesions (${lit} lit pixels, ${lesion} lesion-coloured)`, lit > 2000 && lesion > 20);
  await page.locator("#viewer .canvases").screenshot({ path: path.join(outDir, `${mode}-mpr.png`) });
}
/** The page's comparison (issue 20) once `n` have arrived. */
async function comparison(page, n, timeout = 300000) {
  await page.waitForSelector(`body[data-comparisons='${n}']`, { timeout });
  return page.evaluate(() => window.ctscreenComparison);
}
/** Pixels of a canvas in an RGB colour. */
const colourPixels = (page, id, rgb) => page.evaluate(([id, rgb]) => {
  const c = document.getElementById(id);
  const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 0; i < px.length; i += 4) n += Math.abs(px[i] - rgb[0]) < 8 && Math.abs(px[i + 1] - rgb[1]) < 8 && Math.abs(px[i + 2] - rgb[2]) < 8;
  return n;
}, [id, rgb]);

/** Wait for the page's `n`-th finished analysis and for its canvas to show the current slice
 * as analysed (the page asks the worker for the pixels it draws). */
async function analysed(page, n, timeout) {
  await page.waitForSelector(`body[data-analyses='${n}']`, { timeout });
  await page.waitForSelector("body[data-drawn='1']", { timeout: 60000 });
}

async function runMode(mode) {
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-chromium-"));
  const args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic"];
  if (mode === "webgpu") args.push("--enable-unsafe-webgpu");
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: "/usr/bin/chromium", headless: true, args,
    env: { ...process.env, XDG_RUNTIME_DIR: userDir },
  });
  const page = await ctx.newPage();
  const requests = [];
  page.on("request", (r) => requests.push({ url: r.url(), method: r.method(), t: Date.now() }));
  ctx.on("request", (r) => requests.push({ url: r.url(), method: r.method(), t: Date.now() }));
  page.on("console", (m) => { if (m.type() === "error") console.log(`[${mode} console] ${m.text()}`); });
  // The WebGPU path is kept with `?backend=webgpu`: by default the page leaves a GPU adapter
  // slower than the CPU, as SwiftShader is (checked below).
  await page.goto(origin + (mode === "webgpu" ? "/?backend=webgpu" : "/"));
  await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
  // The service worker precaches everything on install; let it finish before analysis starts.
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const backend = await page.evaluate(() => document.body.dataset.backend);
  check(`${mode}: backend is ${mode === "webgpu" ? "webgpu" : "the CPU fallback"}`,
    mode === "webgpu" ? backend === "webgpu" : backend.startsWith("cpu"), `got ${backend}`);
  check(`${mode}: disclaimer always visible`, await page.isVisible("#disclaimer"));
  if (mode === "webgpu") {
    // Issue 22: WebGPU must not be slower than the CPU without saying so. On SwiftShader one
    // slice takes seconds against a few hundred ms on the CPU: the default page times both at
    // start, takes the CPU and says why.
    const auto = await ctx.newPage();
    await auto.goto(origin + "/");
    await auto.waitForSelector("body[data-ready='1']", { timeout: 180000 });
    const race = await auto.evaluate(() => document.body.dataset.race ?? "");
    const [gpuMs, cpuMs, switched] = race.split(",");
    const status = await auto.textContent("#status");
    check(`webgpu: on a GPU adapter slower than the CPU (${gpuMs} ms against ${cpuMs} ms a slice) the page takes the CPU and says so`,
      switched === "true" && Number(gpuMs) > 1.5 * Number(cpuMs)
      && (await auto.evaluate(() => document.body.dataset.backend)).startsWith("cpu") && status.includes("WebGPU took"), status);
    await auto.screenshot({ path: path.join(outDir, "webgpu-slower-than-cpu.png"), fullPage: true });
    await auto.close();
    // The quick first estimate on the GPU path, where the owning worker is the model
    // (`?quick=2` forces it on this 3-slice series): it goes out first, then the analysis proper.
    const quickPage = await ctx.newPage();
    await quickPage.goto(origin + "/?backend=webgpu&quick=2");
    await quickPage.waitForSelector("body[data-ready='1']", { timeout: 180000 });
    await quickPage.setInputFiles("#file", fs.readdirSync(lidcDir).filter((f) => f.endsWith(".dcm")).map((f) => path.join(lidcDir, f)));
    await analysed(quickPage, 1, 300000);
    const qs = await quickPage.evaluate(() => ({ ...document.body.dataset }));
    check(`webgpu: the quick first estimate runs on the GPU too (${qs.quickSeen ?? 0} quick report, then the final one on ${qs.backend})`,
      qs.quickSeen === "1" && qs.backend === "webgpu" && qs.provisional === "0");
    await quickPage.close();
  }

  // a. A MedSeg slice: probabilities shown, overlay overlaps the expert mask.
  const tAnalysis = Date.now();
  await page.setInputFiles("#file", slice);
  await analysed(page, 1, 180000);
  const p = Number(await page.textContent("#pcovid"));
  check(`${mode}: p(COVID-19) shown in [0,1]`, p >= 0 && p <= 1, `got ${p}`);
  const maskB64 = fs.readFileSync(maskPath).toString("base64");
  const stats = await page.evaluate(async (b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const bmp = await createImageBitmap(new Blob([bytes], { type: "image/png" }));
    const oc = new OffscreenCanvas(bmp.width, bmp.height);
    const octx = oc.getContext("2d");
    octx.drawImage(bmp, 0, 0);
    const mask = octx.getImageData(0, 0, bmp.width, bmp.height).data;
    const c = document.getElementById("slice");
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let tp = 0, fp = 0, fn = 0; const drawn = [];
    for (let i = 0; i < c.width * c.height; i++) {
      const isOverlay = px[4 * i] !== px[4 * i + 2] || px[4 * i] !== px[4 * i + 1];
      const truth = mask[4 * i] > 127;
      drawn.push(isOverlay ? 1 : 0);
      if (isOverlay && truth) tp++; else if (isOverlay) fp++; else if (truth) fn++;
    }
    return { w: c.width, h: c.height, mw: bmp.width, mh: bmp.height, tp, fp, fn, drawn };
  }, maskB64);
  const dice = (2 * stats.tp) / Math.max(1, 2 * stats.tp + stats.fp + stats.fn);
  check(`${mode}: canvas has the slice's size`, stats.w === stats.mw && stats.h === stats.mh);
  check(`${mode}: a single PNG/JPEG slice keeps the axial pane alone`,
    await page.evaluate(() => document.body.dataset.mpr === "0" && document.getElementById("mpr-figure").hidden));
  check(`${mode}: drawn lesions overlap the expert mask (Dice ${dice.toFixed(3)} >= 0.3)`, dice >= 0.3);
  overlays[mode] = stats.drawn;
  await page.screenshot({ path: path.join(outDir, `${mode}-medseg.png`), fullPage: true });

  // d. Bad files get a clear message and the page still analyses the next good file.
  const brokenDcm = "\0".repeat(128) + "DICM\x02\0\0\0UL\x04\0";
  for (const [name, content] of [["notes.txt", "not an image"], ["broken.png", "\x89PNG\r\n\x1a\n\0\0"], ["broken.dcm", brokenDcm]]) {
    const errorsBefore = Number(await page.evaluate(() => document.body.dataset.errors || 0));
    await page.setInputFiles("#file", { name, mimeType: "application/octet-stream", buffer: Buffer.from(content, "binary") });
    await page.waitForFunction((n) => Number(document.body.dataset.errors || 0) > n, errorsBefore, { timeout: 60000 });
    const msg = await page.textContent("#error");
    check(`${mode}: ${name} gives a clear message naming it`, msg.includes(name) && /decode|readable|empty|damaged|cannot read/.test(msg), msg);
  }
  await page.screenshot({ path: path.join(outDir, `${mode}-bad-file.png`), fullPage: true });
  await page.setInputFiles("#file", slice);
  await analysed(page, 2, 180000);
  check(`${mode}: a good file still works after bad ones`, await page.isHidden("#error"));
  let analyses = 2, comparisons = 0;

  // Follow-up (issue 20) of two PNG/JPEG slices: compared in numbers, no aligned view (no
  // positions along z), and what makes it doubtful said. Then an unreadable follow-up: named,
  // and the first scan's analysis is back.
  const pFirst = await page.textContent("#pcovid");
  await page.setInputFiles("#fu-file", slice2);
  await analysed(page, ++analyses, 180000);
  const pair = await comparison(page, ++comparisons);
  await page.screenshot({ path: path.join(outDir, `${mode}-compare-slices.png`), fullPage: true });
  check(`${mode}: two slices compare without an aligned view, with warnings (${pair.warnings.length}) and the change table`,
    await page.isVisible("#compare") && pair.alignment.z_offset_mm === null && await page.isHidden("#cmp-panes")
    && pair.warnings.some((w) => w.includes("patient identity unknown")) && pair.warnings.some((w) => w.includes("no physical spacing"))
    && (await page.textContent("#cmp-align")).startsWith("No aligned view")
    && (await page.$$("#cmp-table tbody tr")).length >= 10 && pair.baseline.input === "0.jpg" && pair.followup.input === "1.jpg"
    && await page.isHidden("#cmp-plot-fig"));
  await page.click("#cmp-close");
  await page.setInputFiles("#fu-file", { name: "followup-broken.png", mimeType: "image/png", buffer: Buffer.from("\x89PNG\r\n\x1a\n\0\0", "binary") });
  await page.waitForSelector("body[data-restored='1']", { timeout: 60000 });
  await page.waitForSelector("body[data-drawn='1']", { timeout: 60000 });
  const restoredMsg = await page.textContent("#error");
  check(`${mode}: an unreadable follow-up is named and the first scan's analysis stays ("${restoredMsg.slice(0, 60)}")`,
    restoredMsg.includes("followup-broken.png") && (await page.textContent("#pcovid")) === pFirst
    && await page.isVisible("#followup-row") && await page.isHidden("#compare"));

  // A real DICOM series (20 slices, JPEG 2000): scrolling, report vs CLI, NIfTI export. On the
  // software WebGPU adapter a slice takes seconds, so there the run is cancelled after the
  // first slices (which tests Cancel); the CPU path analyses all 20.
  const full = mode === "cpu";
  await page.setInputFiles("#file", seriesFiles);
  await page.waitForFunction(() => Number(document.body.dataset.done || 0) >= 1 && document.body.dataset.slices === "20", null, { timeout: 300000 });
  check(`${mode}: the 20-file JPEG 2000 series loads as 20 slices, not labelled synthetic`,
    (await page.evaluate(() => document.body.dataset.slices)) === "20" && await page.isHidden("#synthetic"));
  if (!full) await page.click("#cancel");
  await analysed(page, ++analyses, 300000);
  if (full) {
    // Coarse to fine: an estimate marked provisional came before the final one, which is not.
    const seen = Number(await page.evaluate(() => document.body.dataset.provisionalSeen || 0));
    const final = await page.evaluate(() => document.body.dataset.provisional);
    check(`${mode}: provisional reports (${seen}) came before the final report, which is not marked provisional`,
      seen >= 1 && final === "0" && await page.isHidden("#provisional"));
  }
  if (!full) {
    const status = await page.textContent("#status");
    const done = Number(await page.evaluate(() => document.body.dataset.done));
    check(`${mode}: Cancel stops the run and keeps the finished slices (${done} of 20; "${status.slice(0, 40)}")`,
      status.startsWith("Cancelled") && done >= 1 && done < 20);
  }
  const zOf = () => page.evaluate(() => Number(document.body.dataset.z));
  await page.focus("#slice-figure");
  await page.keyboard.press("Home");
  const z0 = await zOf();
  await page.keyboard.press("ArrowDown");
  const z1 = await zOf();
  await page.keyboard.press("End");
  const zEnd = await zOf();
  await page.hover("#slice");
  await page.mouse.wheel(0, -100);
  await page.waitForTimeout(100);
  const zWheel = await zOf();
  check(`${mode}: keys and wheel change the slice (${z0}→${z1}, End ${zEnd}, wheel ${zWheel})`,
    z0 === 0 && z1 === 1 && zEnd === 19 && zWheel === 18);
  await page.click("#wl-med");
  check(`${mode}: mediastinum preset applies`, (await page.textContent("#wl-text")).includes("W 350 / L 40"));
  await page.click("#wl-lung");
  await page.keyboard.press("Home");
  await page.click("#strip", { position: { x: 839, y: 30 } });
  check(`${mode}: clicking the strip jumps to a slice`, (await zOf()) === 19);
  const shownSeverity = await page.evaluate(() => document.body.dataset.severity);
  const shownPText = await page.textContent("#pcovid");
  // The series is an upper abdomen without lung: no verdict, visibly, on both paths.
  check(`${mode}: the lung-free abdominal series shows "no lung" instead of an estimate ("${shownPText}", severity ${shownSeverity})`,
    (await page.evaluate(() => document.body.dataset.lungFound)) === "0" && await page.isVisible("#nolung")
    && shownPText.includes("no lung") && shownSeverity === "n/a");
  if (cliReport && full) {
    check(`${mode}: page report matches the CLI (no lung in either: p ${cliReport.p_covid}, ${shownSeverity} vs ${cliReport.severity}, warning ${cliReport.warnings.some((w) => w.startsWith("no lung found"))})`,
      cliReport.lung_found === false && cliReport.p_covid === null && shownSeverity === cliReport.severity
      && cliReport.warnings.some((w) => w.startsWith("no lung found")));
  }
  const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-mask")]);
  const nii = zlib.gunzipSync(fs.readFileSync(await dl.path()));
  const dims = [0, 1, 2, 3].map((i) => nii.readInt16LE(40 + 2 * i));
  check(`${mode}: exported NIfTI mask parses with the series' dims (${dims})`,
    nii.readInt32LE(0) === 348 && dims[0] === 3 && dims[1] === 512 && dims[2] === 512 && dims[3] === 20
    && nii.length === 352 + 512 * 512 * 20);
  const [dlj] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-json")]);
  const rep = JSON.parse(fs.readFileSync(await dlj.path(), "utf8"));
  check(`${mode}: downloaded JSON report has the report's keys`,
    ["input", "model", "backend", "p_covid", "lung_found", "slices", "lung_ml", "lesion_ml", "involvement_pct", "severity", "ood_slices"].every((k) => k in rep)
    && rep.slices.every((s) => typeof s.lung === "boolean")
    && rep.slices.length === (full ? 20 : Number(await page.evaluate(() => document.body.dataset.done))));
  if (cliReport && full) {
    const close = (a, b, tol) => Math.abs(a - b) <= tol;
    check(`${mode}: page JSON matches the CLI (lung ${(rep.lung_ml.left + rep.lung_ml.right).toFixed(1)} vs ${(cliReport.lung_ml.left + cliReport.lung_ml.right).toFixed(1)} mL, lesions ${rep.lesion_ml.total.toFixed(2)} vs ${cliReport.lesion_ml.total.toFixed(2)} mL)`,
      close(rep.lung_ml.left, cliReport.lung_ml.left, 1e-6) && close(rep.lung_ml.right, cliReport.lung_ml.right, 1e-6)
      && close(rep.lesion_ml.total, cliReport.lesion_ml.total, Math.max(0.5, 0.02 * cliReport.lesion_ml.total))
      && rep.p_covid === cliReport.p_covid && rep.lung_found === cliReport.lung_found && rep.severity === cliReport.severity);
  }
  await page.screenshot({ path: path.join(outDir, `${mode}-series.png`), fullPage: true });
  if (full) {
    // A DICOM baseline and a NIfTI follow-up (TotalSegmentator's example, both without lung):
    // the mix works; no lung, no aligned view, said.
    await page.setInputFiles("#fu-file", path.join(data, "ct-files/totalsegmentator/example_ct_sm.nii.gz"));
    await analysed(page, ++analyses, 300000);
    const mix = await comparison(page, ++comparisons);
    // The NIfTI reaches the lung bases; the DICOM export (20 slices) does not.
    check(`${mode}: DICOM baseline + NIfTI follow-up compare (no lung in the baseline, lung bases in the follow-up: no volume change, no aligned view)`,
      mix.baseline.kind === "dicom" && mix.followup.kind === "nifti" && mix.alignment.z_offset_mm === null
      && mix.warnings.some((w) => w.startsWith("no lung found in the baseline")) && mix.warnings.some((w) => w.startsWith("the lung is cut by an end of the follow-up"))
      && mix.change.lesion_ml === null && mix.change.lung_ml === null
      && await page.isVisible("#compare") && (await page.evaluate(() => document.body.dataset.aligned)) === "0");
    await page.screenshot({ path: path.join(outDir, `${mode}-compare-mix.png`), fullPage: true });
  }
  if (cliSbu && full) {
    // A COVID-19 chest slice with lesions: the page's report equals the CLI's.
    await page.setInputFiles("#file", sbuSlice);
    await analysed(page, ++analyses, 300000);
    check(`${mode}: a new scan (not a follow-up) ends the comparison`, await page.isHidden("#compare"));
    const [d] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-json")]);
    const r = JSON.parse(fs.readFileSync(await d.path(), "utf8"));
    const rel = (a, b) => Math.abs(a - b) / Math.max(1e-9, Math.abs(b));
    check(`${mode}: report of an SBU COVID-19 slice matches the CLI (lesions ${r.lesion_ml.total.toFixed(2)} vs ${cliSbu.lesion_ml.total.toFixed(2)} mL, lung ${(r.lung_ml.left + r.lung_ml.right).toFixed(1)} mL, ${r.severity} vs ${cliSbu.severity}, p ${r.p_covid.toFixed(3)} vs ${cliSbu.p_covid.toFixed(3)})`,
      r.lesion_ml.total > 0 && rel(r.lesion_ml.total, cliSbu.lesion_ml.total) < 0.02
      && rel(r.lung_ml.left, cliSbu.lung_ml.left) < 1e-6 && rel(r.lung_ml.right, cliSbu.lung_ml.right) < 1e-6
      && r.severity === cliSbu.severity && Math.abs(r.p_covid - cliSbu.p_covid) < 0.01
      && Math.abs(r.involvement_pct.total - cliSbu.involvement_pct.total) < 1.0);
    // The lung outline: drawn in its colour when switched on, absent when off.
    const lungPixels = () => page.evaluate(() => {
      const c = document.getElementById("slice");
      const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < px.length; i += 4) n += px[i] === 79 && px[i + 1] === 195 && px[i + 2] === 247;
      return n;
    });
    const before = await lungPixels();
    await page.check("#lung-outline");
    const outlined = await lungPixels();
    await page.screenshot({ path: path.join(outDir, `${mode}-sbu-lung-outline.png`), fullPage: true });
    await page.uncheck("#lung-outline");
    check(`${mode}: "Show lung outline" draws the lung's outline (${outlined} px on, ${before} off)`, before === 0 && outlined > 500);
    const [dseg] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-seg")]);
    const seg = fs.readFileSync(await dseg.path());
    check(`${mode}: DICOM input offers a DICOM-SEG download that is a Segmentation object (${seg.length} bytes)`,
      seg.subarray(128, 132).toString() === "DICM" && hasUid(seg, "1.2.840.10008.5.1.4.1.1.66.4"));
  }

  // The demo: synthetic phantom, visibly labelled. On software WebGPU it is cancelled after the
  // first pass (8 of 32 slices, two batches), once its provisional report has been shown: the
  // provisional-then-final report on the GPU path.
  const seenBefore = Number(await page.evaluate(() => document.body.dataset.provisionalSeen || 0));
  await page.click("#demo");
  if (!full) {
    await page.waitForFunction((k) => document.body.dataset.slices === "32" && Number(document.body.dataset.provisionalSeen || 0) > k, seenBefore, { timeout: 600000 });
    const shown = await page.isVisible("#provisional") && (await page.textContent("#provisional")).startsWith("Provisional");
    await page.click("#cancel");
    await analysed(page, ++analyses, 300000);
    const label = await page.textContent("#provisional");
    const done = Number(await page.evaluate(() => document.body.dataset.done));
    check(`${mode}: a provisional report shows after the first pass, then the final one says what it rests on (${done} of 32; "${label.slice(0, 40)}")`,
      shown && done >= 8 && done < 32 && label.startsWith("Partial: cancelled after"));
  } else {
    await analysed(page, ++analyses, 300000);
  }
  check(`${mode}: demo runs and is labelled synthetic`, await page.isVisible("#synthetic"));
  await page.screenshot({ path: path.join(outDir, `${mode}-demo.png`), fullPage: true });
  await checkMpr(page, mode);

  // Damaged files do not sink a series: the two LIDC slices, then the same two with the fuzz
  // findings that once made the header parser reserve 1–4 GB. The slices are analysed, the
  // findings listed as skipped, and the owning worker's wasm memory (which never shrinks) grows
  // by at most 256 MB over what the two slices alone took.
  const lidc = fs.readdirSync(lidcDir).filter((f) => f.endsWith(".dcm")).sort().map((f) => path.join(lidcDir, f));
  const findings = ["dicom-oom-422b-takes-1gb.dcm", "dicom-oom-424b-takes-4gb.dcm", "dicom-oom-unknown-vr-4gb.dcm"]
    .map((f) => path.join(findingsDir, f));
  await page.setInputFiles("#file", lidc);
  await analysed(page, ++analyses, 300000);
  const memClean = Number(await page.evaluate(() => document.body.dataset.wasmMem || 0));
  await page.setInputFiles("#file", [...lidc, ...findings]);
  await analysed(page, ++analyses, 300000);
  const memDamaged = Number(await page.evaluate(() => document.body.dataset.wasmMem || 0));
  const shownSkipped = Number(await page.evaluate(() => document.body.dataset.skipped || 0));
  const warningsText = await page.textContent("#warnings");
  await page.screenshot({ path: path.join(outDir, `${mode}-damaged-series.png`), fullPage: true });
  check(`${mode}: a series with ${findings.length} damaged files analyses its 2 slices and names the skipped files (${shownSkipped} skipped; wasm memory ${(memClean / 2 ** 20).toFixed(0)} → ${(memDamaged / 2 ** 20).toFixed(0)} MB)`,
    (await page.evaluate(() => document.body.dataset.slices)) === "2" && await page.isHidden("#error")
    && shownSkipped === findings.length && findings.every((f) => warningsText.includes(path.basename(f)))
    && memClean > 0 && memDamaged - memClean <= 256 * 2 ** 20);

  if (full) {
    // JPEG-LS (issue 21), decoded in wasm: three slices of a chest series compressed here with
    // dcmtk's dcmcjpls give the report of the same slices uncompressed.
    const a2 = path.join(data, "ct-files/lung-pet-ct-dx-a0002");
    const three = ["1-08.dcm", "1-09.dcm", "1-10.dcm"].map((f) => path.join(a2, f));
    const jlsDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-jls-"));
    const jls = three.map((f, k) => { const o = path.join(jlsDir, `ls-${k}.dcm`); execFileSync("dcmcjpls", [f, o]); return o; });
    const reportOf = async (files) => {
      await page.setInputFiles("#file", files);
      await analysed(page, ++analyses, 300000);
      const [d] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-json")]);
      return JSON.parse(fs.readFileSync(await d.path(), "utf8"));
    };
    const plain = await reportOf(three);
    const ls = await reportOf(jls);
    check(`${mode}: a JPEG-LS series is decoded in the page and reports as the uncompressed one (lesions ${ls.lesion_ml.total.toFixed(2)} vs ${plain.lesion_ml.total.toFixed(2)} mL)`,
      ls.slices.length === 3 && ls.skipped_files.length === 0 && ls.lesion_ml.total === plain.lesion_ml.total
      && ls.lung_ml.left === plain.lung_ml.left && ls.p_covid === plain.p_covid && await page.isHidden("#error"));
  }

  // b. Privacy: only same-origin GETs of static assets, none after analysis started.
  const foreign = requests.filter((r) => !r.url.startsWith(origin) && !r.url.startsWith("blob:") && !r.url.startsWith("data:"));
  const nonGet = requests.filter((r) => r.method !== "GET");
  const late = requests.filter((r) => r.t >= tAnalysis && r.url.startsWith("http"));
  check(`${mode}: every request is a same-origin GET`, foreign.length === 0 && nonGet.length === 0,
    JSON.stringify([...foreign, ...nonGet].slice(0, 3)));
  check(`${mode}: no request after analysis starts`, late.length === 0, JSON.stringify(late.slice(0, 3)));

  if (mode === "cpu") {
    // A series larger than this device's memory can hold is refused from its headers, with its
    // size and what to do, and the page stays usable: a 256 MB device (navigator.deviceMemory
    // 0.25) holds no 512²×255 series.
    const small = await ctx.newPage();
    await small.addInitScript(() => Object.defineProperty(Navigator.prototype, "deviceMemory", { get: () => 0.25 }));
    await small.goto(origin + "/?backend=cpu&workers=1");
    await small.waitForSelector("body[data-ready='1']", { timeout: 180000 });
    const ricord = path.join(data, "ct-files/ricord-1a-covid-000082");
    await small.setInputFiles("#file", fs.readdirSync(ricord).filter((f) => f.endsWith(".dcm")).map((f) => path.join(ricord, f)));
    await small.waitForSelector("#error:not([hidden])", { timeout: 120000 });
    const refusal = await small.textContent("#error");
    await small.screenshot({ path: path.join(outDir, "cpu-too-large.png"), fullPage: true });
    check(`cpu: a series over the device's memory is refused up front ("${refusal.slice(0, 90)}…")`,
      /MB in memory/.test(refusal) && /fewer slices/.test(refusal) && (await small.evaluate(() => document.body.dataset.slices ?? "")) === "");
    await small.close();
  }

  // c. Offline: after this visit, reload with the network off and analyse a file.
  await ctx.setOffline(true);
  await page.reload();
  await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
  check(`${mode}: the offline page is served by the service worker`,
    await page.evaluate(() => navigator.serviceWorker.controller !== null));
  await page.setInputFiles("#file", slice);
  await analysed(page, 1, 180000);
  const pOffline = Number(await page.textContent("#pcovid"));
  const cacheKeys = await page.evaluate(() => caches.keys());
  check(`${mode}: one service-worker cache, named by the build hash`,
    cacheKeys.length === 1 && /^ctscreen-[0-9a-f]{16}$/.test(cacheKeys[0]), JSON.stringify(cacheKeys));
  check(`${mode}: offline reload still analyses (p ${pOffline.toFixed(3)} = online ${p.toFixed(3)})`, Math.abs(pOffline - p) < 1e-6);
  await page.screenshot({ path: path.join(outDir, `${mode}-offline.png`), fullPage: true });
  await ctx.setOffline(false);
  await ctx.close();
}

/**
 * The CPU pool on a real chest series (Lung-PET-CT-Dx A0002): one worker and two give the same
 * mask bit for bit and the same report; Cancel with two workers stops them all; a worker that
 * crashes mid-run loses nothing (every slice exactly once, same mask).
 */
async function runPool() {
  const dir = path.join(data, "ct-files/lung-pet-ct-dx-a0002");
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".dcm")).sort().map((f) => path.join(dir, f));
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "ctscreen-chromium-"));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: "/usr/bin/chromium", headless: true,
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic", "--enable-unsafe-webgpu"],
    env: { ...process.env, XDG_RUNTIME_DIR: userDir },
  });
  const page = await ctx.newPage();
  page.on("console", (m) => { if (m.type() === "error") console.log(`[pool console] ${m.text()}`); });
  const runOnce = async (query, { cancelAfter = 0 } = {}) => {
    await page.goto(origin + "/" + query);
    await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
    const info = await page.evaluate(() => ({ backend: document.body.dataset.backend, workers: Number(document.body.dataset.workers) }));
    await page.setInputFiles("#file", files);
    if (cancelAfter) {
      await page.waitForFunction((k) => Number(document.body.dataset.done || 0) >= k, cancelAfter, { timeout: 300000 });
      await page.click("#cancel");
    }
    await analysed(page, 1, 600000);
    const state = await page.evaluate(() => ({ ...document.body.dataset }));
    if (cancelAfter) return { info, state };
    const [dl] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-mask")]);
    const mask = zlib.gunzipSync(fs.readFileSync(await dl.path()));
    const [dlj] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#dl-json")]);
    const rep = JSON.parse(fs.readFileSync(await dlj.path(), "utf8"));
    return { info, state, mask, rep };
  };
  const nz = files.length;
  const sameReport = (a, b) => JSON.stringify({ ...a, backend: 0 }) === JSON.stringify({ ...b, backend: 0 });
  const one = await runOnce("?backend=cpu&workers=1");
  check(`pool: ?backend=cpu&workers=1 runs one worker on the CPU (${one.info.backend}, ${one.info.workers})`,
    one.info.backend.startsWith("cpu") && one.info.workers === 1);
  const two = await runOnce("?backend=cpu");
  check(`pool: the page picks 2 workers on this 2-core machine (got ${two.info.workers})`, two.info.workers === 2);
  const lesionVoxels = one.mask.subarray(352).reduce((a, v) => a + (v !== 0), 0);
  check(`pool: 2 workers give the 1-worker mask bit for bit (${lesionVoxels} lesion voxels) and the same report`,
    two.mask.equals(one.mask) && sameReport(two.rep, one.rep) && two.rep.slices.length === nz && lesionVoxels > 0);
  // The quick first estimate (a coarse lung outline, ~10 slices; from 48 slices on, here forced
  // on this 30-slice series) shows first and leaves no trace in the final figures.
  const quick = await runOnce("?backend=cpu&quick=1");
  check(`pool: the quick first estimate (?quick=1) came first (${quick.state.quickSeen ?? 0} quick report) and the final mask and report are the same bit for bit`,
    quick.state.quickSeen === "1" && quick.mask.equals(one.mask) && sameReport(quick.rep, one.rep));
  // Slices without any lung voxel never reach the model: every other slice arrives once.
  check(`pool: every slice with lung arrives once with 2 workers (${two.state.done} of ${two.state.run}; ${nz - Number(two.state.run)} of ${nz} without lung need no model; repeats ${two.state.repeatedSlices ?? 0})`,
    Number(two.state.done) === Number(two.state.run) && Number(two.state.run) > nz / 2 && !two.state.repeatedSlices);
  const cancelled = await runOnce("?backend=cpu&workers=2", { cancelAfter: 3 });
  const doneAtCancel = Number(cancelled.state.done);
  await new Promise((r) => setTimeout(r, 3000));
  const doneLater = Number(await page.evaluate(() => document.body.dataset.done));
  check(`pool: Cancel with 2 workers stops them all (${doneAtCancel} of ${nz} at the report, ${doneLater} 3 s later)`,
    doneAtCancel >= 3 && doneAtCancel < nz && doneLater === doneAtCancel
    && (await page.textContent("#status")).startsWith("Cancelled"));
  const crashed = await runOnce("?backend=cpu&workers=2&crashworker=6");
  check(`pool: a worker crashing mid-run loses nothing (pool ${crashed.info.workers} → ${crashed.state.workersAfterRun}, ${crashed.state.done} of ${crashed.state.run} slices with lung, repeats ${crashed.state.repeatedSlices ?? 0}, same mask)`,
    crashed.info.workers === 2 && crashed.state.workersAfterRun === "1" && Number(crashed.state.done) === Number(crashed.state.run)
    && !crashed.state.repeatedSlices && crashed.mask.equals(one.mask) && sameReport(crashed.rep, one.rep));
  await page.screenshot({ path: path.join(outDir, "pool-crash.png"), fullPage: true });

  // Follow-up (issue 20) on the CPU pool: the same series without its 3 lowest slices (24 mm)
  // is found 24 mm off, with the same figures, both scans at the same level side by side.
  const fuFiles = files.filter((f) => !/1-(28|29|30)\.dcm$/.test(f));
  await page.setInputFiles("#fu-file", fuFiles);
  // Until the follow-up's own maps are drawn, the reformats show no scan (not the baseline's).
  const pending = await page.waitForFunction(() => {
    const c = document.getElementById("mpr-caption").textContent;
    if (document.body.dataset.slices !== "27" || !c.startsWith("Coronal, sagittal and 3-D views: drawn when")) return false;
    return { loc: window.ctscreenMpr.locate([0, 0, 0]) };
  }, null, { timeout: 300000 }).then((h) => h.jsonValue());
  check(`compare: while the follow-up is analysed the reformats show no scan (not the baseline's)`, pending.loc === null);
  await analysed(page, 2, 600000);
  const cut = await comparison(page, 1);
  await page.waitForSelector("body[data-cmp-drawn='1']", { timeout: 60000 });
  const zPair = await page.evaluate(() => document.body.dataset.cmpZ);
  const [zb, zf] = zPair.split(",").map(Number);
  check(`compare: the cut copy aligns ${cut.alignment.z_offset_mm} mm off (3 slices of 8 mm: -24), involvement ${cut.change.involvement_pct_points.total?.toFixed(2)} points, same patient, interval ${cut.interval_days} days`,
    Math.abs(cut.alignment.z_offset_mm + 24) <= 8 && Math.abs(cut.change.involvement_pct_points.total) <= 0.5
    && cut.same_patient === true && cut.interval_days === 0 && cut.followup.slices.length === fuFiles.length);
  // Slices are stored lowest first, so the cut's slice k is the full series' slice k + 3.
  check(`compare: the panes open at the key level on the same anatomy (slices ${zPair}) and the plot draws both lines`,
    zb === zf + 3 && zf >= 0 && await page.isVisible("#cmp-base") && await page.isVisible("#cmp-fu")
    && (await colourPixels(page, "cmp-plot", [79, 195, 247])) > 50 && (await colourPixels(page, "cmp-plot", [255, 183, 77])) > 50);
  await page.screenshot({ path: path.join(outDir, "pool-compare.png"), fullPage: true });
  // What "Print change report" prints: the comparison alone, both key images at one level.
  await page.evaluate(() => document.body.classList.add("print-compare"));
  await page.emulateMedia({ media: "print" });
  check(`compare: the printed change report has both key images and the table, not the single-scan viewer`,
    await page.isVisible("#cmp-base") && await page.isVisible("#cmp-fu") && await page.isVisible("#cmp-table")
    && await page.isHidden("#viewer") && await page.isHidden("#cmp-swap"));
  await page.screenshot({ path: path.join(outDir, "pool-compare-print.png"), fullPage: true });
  await page.emulateMedia({ media: "screen" });
  await page.evaluate(() => document.body.classList.remove("print-compare"));
  await page.focus("#cmp-fu-fig");
  await page.keyboard.press("PageUp");
  await page.waitForSelector("body[data-cmp-drawn='1']", { timeout: 60000 });
  const zUp = await page.evaluate(() => document.body.dataset.cmpZ);
  await page.hover("#cmp-base");
  await page.mouse.wheel(0, 100);
  await page.waitForTimeout(100);
  const zWheel = await page.evaluate(() => document.body.dataset.cmpZ);
  check(`compare: keys and wheel scroll both scans together (${zPair} → PageUp ${zUp} → wheel ${zWheel})`,
    zb + 10 < nz && zUp === `${zb + 10},${zf + 10}` && zWheel === `${zb + 9},${zf + 9}`);
  const [dlc] = await Promise.all([page.waitForEvent("download", { timeout: 60000 }), page.click("#cmp-json")]);
  const cj = JSON.parse(fs.readFileSync(await dlc.path(), "utf8"));
  check(`compare: the change report downloads as JSON with the CLI's names`,
    ["baseline", "followup", "alignment", "change", "interval_days", "warnings", "summary", "profiles"].every((k) => k in cj)
    && "z_offset_mm" in cj.alignment && "method" in cj.alignment
    && ["involvement_pct_points", "lesion_ml", "lesion_ml_pct", "lung_ml", "interval_days", "warnings"].every((k) => k in cj.change)
    && cj.baseline.slices.length === nz);
  await page.click("#cmp-swap");
  const swapped = await comparison(page, 2);
  await page.waitForSelector("body[data-cmp-drawn='1']", { timeout: 60000 });
  check(`compare: swapping the order reverses the offset (${swapped.alignment.z_offset_mm} mm) and the change`,
    Math.abs(swapped.alignment.z_offset_mm - cut.alignment.z_offset_mm * -1) < 1e-6 && swapped.baseline.slices.length === fuFiles.length
    && Math.abs(swapped.change.lesion_ml.total + cut.change.lesion_ml.total) < 1e-6);
  // Cancelling the follow-up's run keeps the baseline's results; the comparison says what the
  // follow-up rests on.
  await page.click("#cmp-close");
  await page.evaluate(() => { document.body.dataset.slices = ""; }); // set again by the next volume
  await page.setInputFiles("#fu-file", fuFiles);
  await page.waitForFunction(() => Number(document.body.dataset.done || 0) >= 3 && document.body.dataset.slices === "27", null, { timeout: 300000 });
  await page.click("#cancel");
  const part = await comparison(page, 3);
  check(`compare: a cancelled follow-up keeps the baseline's figures and says it is partial ("${part.warnings.find((w) => w.includes("cancelled"))?.slice(0, 60)}")`,
    part.baseline.slices.length === nz && Math.abs(part.baseline.lesion_ml.total - cut.baseline.lesion_ml.total) < 1e-9
    && part.warnings.some((w) => w.startsWith("the follow-up was analysed on") && w.includes("of its 27 slices")));
  // v2 is the default; `?model=v1` loads the first model (the U-Net trained from scratch).
  await page.goto(origin + "/?backend=cpu&workers=1&model=v1");
  await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
  const v1 = await page.evaluate(() => document.body.dataset.model);
  check(`models: the default is ctscreen-v2 (${one.state.model}); ?model=v1 loads ${v1}`,
    one.state.model === "ctscreen-v2" && v1 === "ctscreen-v1");
  await ctx.close();
}

try {
  // CTSCREEN_E2E_ONLY=pool|webgpu|cpu runs one part (while developing; CI runs them all).
  const only = process.env.CTSCREEN_E2E_ONLY;
  if (!only || only === "pool") {
    try { await runPool(); } catch (e) { check("pool: run completed", false, String(e)); }
  }
  for (const mode of ["webgpu", "cpu"].filter((m) => !only || only === m)) {
    try { await runMode(mode); } catch (e) { check(`${mode}: run completed`, false, String(e)); }
  }
  if (overlays.webgpu && overlays.cpu) {
    let diff = 0;
    for (let i = 0; i < overlays.cpu.length; i++) diff += overlays.cpu[i] !== overlays.webgpu[i];
    const frac = diff / overlays.cpu.length;
    check(`WebGPU and CPU masks agree on >= 99.5 % of pixels (differ on ${(100 * frac).toFixed(3)} %)`, frac <= 0.005);
  }
} finally {
  server.kill();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
