// End-to-end test of the static page in headless Debian Chromium, driven by playwright-core.
// Runs every case twice: (1) WebGPU on Chromium's SwiftShader adapter, (2) WebGPU disabled, so
// the page falls back to the CPU (flex) backend. Prints "N passed, N failed".
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

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
const maskPath = path.join(data, "medseg-covid/train/masks-binary/0.png");
const overlays = {};

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
  await page.goto(origin + "/");
  await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
  // The service worker precaches everything on install; let it finish before analysis starts.
  await page.evaluate(() => navigator.serviceWorker.ready.then(() => true));
  const backend = await page.evaluate(() => document.body.dataset.backend);
  check(`${mode}: backend is ${mode === "webgpu" ? "webgpu" : "the CPU fallback"}`,
    mode === "webgpu" ? backend === "webgpu" : backend.startsWith("cpu"), `got ${backend}`);
  check(`${mode}: disclaimer always visible`, await page.isVisible("#disclaimer"));

  // a. A MedSeg slice: probabilities shown, overlay overlaps the expert mask.
  const tAnalysis = Date.now();
  await page.setInputFiles("#file", slice);
  await page.waitForSelector("body[data-analyses='1']", { timeout: 180000 });
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
  check(`${mode}: drawn lesions overlap the expert mask (Dice ${dice.toFixed(3)} >= 0.3)`, dice >= 0.3);
  overlays[mode] = stats.drawn;
  await page.screenshot({ path: path.join(outDir, `${mode}-medseg.png`), fullPage: true });

  // d. Bad files get a clear message and the page still analyses the next good file.
  for (const [name, content] of [["notes.txt", "not an image"], ["broken.png", "\x89PNG\r\n\x1a\n\0\0"]]) {
    const errorsBefore = Number(await page.evaluate(() => document.body.dataset.errors || 0));
    await page.setInputFiles("#file", { name, mimeType: "application/octet-stream", buffer: Buffer.from(content, "binary") });
    await page.waitForFunction((n) => Number(document.body.dataset.errors || 0) > n, errorsBefore, { timeout: 60000 });
    const msg = await page.textContent("#error");
    check(`${mode}: ${name} gives a clear message naming it`, msg.includes(name) && /decode|readable|empty/.test(msg), msg);
  }
  await page.screenshot({ path: path.join(outDir, `${mode}-bad-file.png`), fullPage: true });
  await page.setInputFiles("#file", slice);
  await page.waitForSelector("body[data-analyses='2']", { timeout: 180000 });
  check(`${mode}: a good file still works after bad ones`, await page.isHidden("#error"));

  // b. Privacy: only same-origin GETs of static assets, none after analysis started.
  const foreign = requests.filter((r) => !r.url.startsWith(origin) && !r.url.startsWith("blob:") && !r.url.startsWith("data:"));
  const nonGet = requests.filter((r) => r.method !== "GET");
  const late = requests.filter((r) => r.t >= tAnalysis && r.url.startsWith("http"));
  check(`${mode}: every request is a same-origin GET`, foreign.length === 0 && nonGet.length === 0,
    JSON.stringify([...foreign, ...nonGet].slice(0, 3)));
  check(`${mode}: no request after analysis starts`, late.length === 0, JSON.stringify(late.slice(0, 3)));

  // c. Offline: after this visit, reload with the network off and analyse a file.
  await ctx.setOffline(true);
  await page.reload();
  await page.waitForSelector("body[data-ready='1']", { timeout: 180000 });
  check(`${mode}: the offline page is served by the service worker`,
    await page.evaluate(() => navigator.serviceWorker.controller !== null));
  await page.setInputFiles("#file", slice);
  await page.waitForSelector("body[data-analyses='1']", { timeout: 180000 });
  const pOffline = Number(await page.textContent("#pcovid"));
  check(`${mode}: offline reload still analyses (p ${pOffline.toFixed(3)} = online ${p.toFixed(3)})`, Math.abs(pOffline - p) < 1e-6);
  await page.screenshot({ path: path.join(outDir, `${mode}-offline.png`), fullPage: true });
  await ctx.setOffline(false);
  await ctx.close();
}

try {
  for (const mode of ["webgpu", "cpu"]) {
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
