// The coronal, sagittal and 3-D panes, drawn by NiiVue (WebGL2) from NIfTI copies of the scan
// that the worker makes (`viewer_nifti`). The axial pane stays the page's own full-resolution
// canvas; this module keeps NiiVue's crosshair on the page's voxel and reports clicks, scrolls
// and right-drag windowing back. Without WebGL2 the page keeps the axial pane alone.
import { DRAG_MODE, NVImage, Niivue, SHOW_RENDER, SLICE_TYPE } from "@niivue/niivue";
import { CLASS_COLOURS, LUNG_COLOUR } from "./render.js";
import { clampVoxel, rasToVoxel, voxelToRas } from "./mpr-geometry.js";

/** A label colour table for NiiVue: index 0 clear, then the given RGB at alpha `a`. */
function labelLut(colours, a, names) {
  return {
    R: [0, ...colours.map((c) => c[0])], G: [0, ...colours.map((c) => c[1])], B: [0, ...colours.map((c) => c[2])],
    A: [0, ...colours.map(() => a)], I: [0, ...colours.map((_, i) => i + 1)], labels: ["", ...names],
  };
}
const LESION_LUT = labelLut([CLASS_COLOURS[1], CLASS_COLOURS[2]], 255, ["ground-glass", "consolidation"]);
// Lung: clear inside, drawn only as its outline (NiiVue's atlas outline, on maps whose NIfTI
// intent is "label": the lung's, not the lesions'). NiiVue's label shader takes any alpha above
// 0 as opaque: transparency is the volume's opacity.
const LUNG_LUT = labelLut([LUNG_COLOUR, LUNG_COLOUR], 0, ["right lung", "left lung"]);
// The 3-D view's lungs: a faint blue glass.
const GLASS_LUT = labelLut([LUNG_COLOUR, LUNG_COLOUR], 24, ["right lung", "left lung"]);

/** Gives `nv` these volumes (the first is the background) and uploads them once: NiiVue's
 * addVolume/removeVolume upload every layer again (and recompute the 3-D gradients) at each
 * call, which on a software GPU (SwiftShader) took the page's thread for half a minute on a
 * 512²×30 series. */
function setLayers(nv, volumes) {
  nv.volumes = volumes;
  nv.back = volumes[0] ?? null;
  nv.overlays = volumes.slice(1);
  nv.updateGLVolume();
}

/** An NVImage from the worker's NIfTI bytes; NiiVue keeps the buffer it is given. */
const image = (name, bytes, opts = {}) => NVImage.loadFromUrl({ url: `${name}.nii`, buffer: bytes.buffer, ...opts });

async function labels(name, bytes, lut, opacity) {
  const v = await image(name, bytes, { opacity });
  v.setColormapLabel(lut);
  return v;
}

export class MprView {
  /**
   * @param {HTMLCanvasElement} planes coronal (top) and sagittal (bottom)
   * @param {(voxel: number[]) => void} onMove the crosshair moved in a pane (canonical voxel)
   * @param {(win: {width:number, level:number}) => void} onWindow right-drag changed the window
   */
  constructor(planes, onMove, onWindow) {
    this.onMove = onMove;
    this.onWindow = onWindow;
    this.scan = null; // {id, affine, dims, hu}
    this.layers = {}; // "lesions", "lung" → NIfTI bytes of the current scan (for the 3-D view)
    this.nv3 = null; // the 3-D view, made on request
    this.chain = Promise.resolve();
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [0, 0.9, 0.46, 0.9], crosshairWidth: 1,
      isRadiologicalConvention: true, // patient right on screen left, as in the axial pane
      multiplanarShowRender: SHOW_RENDER.NEVER, isOrientCube: false, isColorbar: false,
      show3Dcrosshair: false, dragAndDropEnabled: false, loadingText: "", atlasOutline: 0,
      isNearestInterpolation: true, logLevel: "error", textHeight: 0.04,
    });
    this.attached = this.nv.attachToCanvas(planes).then(() => {
      this.nv.setMouseEventConfig({
        leftButton: { primary: DRAG_MODE.crosshair }, rightButton: DRAG_MODE.windowing, centerButton: DRAG_MODE.pan,
      });
      this.nv.setCustomLayout([
        { sliceType: SLICE_TYPE.CORONAL, position: [0, 0, 1, 0.5] },
        { sliceType: SLICE_TYPE.SAGITTAL, position: [0, 0.5, 1, 0.5] },
      ]);
      // NiiVue also reports its own moves (a volume loaded, the crosshair set from the axial
      // pane): only a move the user made in these panes is handed on.
      // Caught on the way down (capture, on the parent): NiiVue's own listeners on the canvas
      // report the move before any listener of ours there would run.
      for (const ev of ["pointerdown", "pointermove", "wheel", "keydown"]) {
        planes.parentElement.addEventListener(ev, (e) => { if (ev !== "pointermove" || e.buttons) this.userAt = performance.now(); }, { passive: true, capture: true });
      }
      this.nv.onLocationChange = (loc) => {
        if (this.quiet || !this.scan || !loc?.mm || !(performance.now() - (this.userAt ?? -Infinity) < 2000)) return;
        const v = rasToVoxel(this.scan.affine, [loc.mm[0], loc.mm[1], loc.mm[2]]);
        if (v) this.onMove(clampVoxel(v, this.scan.dims));
      };
      // Right-drag windowing ends on mouse-up: hand the window to the axial pane.
      planes.addEventListener("mouseup", () => {
        const hu = this.nv.volumes[0];
        if (hu && this.scan?.hu) this.onWindow({ width: hu.cal_max - hu.cal_min, level: (hu.cal_max + hu.cal_min) / 2 });
      });
    });
  }

  /** Queue `f` after what is queued (volumes arrive and change one at a time). */
  queue(f) {
    this.chain = this.chain.then(() => this.attached).then(f).catch((e) => console.warn("multiplanar view:", e));
    return this.chain;
  }

  /** Drop what is shown: no pane may show one scan while another is open. */
  clear() {
    this.scan = null;
    this.layers = {};
    return this.queue(() => {
      for (const nv of [this.nv, this.nv3]) if (nv?.volumes.length) setLayers(nv, []);
    });
  }

  /** A new scan, its volumes to come. */
  reset(id, affine, dims, hu) {
    this.clear();
    this.scan = { id, affine, dims, hu };
  }

  /** NIfTI copies from the worker for scan `id` (the HU volume and the `lesions` and `lung`
   * label maps), all put in place with one upload. */
  load(id, { hu, lesions, lung }, win, show) {
    if (!this.scan || id !== this.scan.id) return Promise.resolve();
    this.layers = { lesions, lung };
    return this.queue(async () => {
      const lo = win.level - win.width / 2;
      const back = await image("scan", hu, { colormap: "gray", cal_min: lo, cal_max: lo + win.width, trustCalMinMax: true });
      // Lesions (drawn filled), then the lung above them (drawn as its outline only).
      const vols = [back, await labels("lesions", lesions.slice(), LESION_LUT, show.lesions ? show.opacity : 0),
        await labels("lung", lung.slice(), LUNG_LUT, 1)];
      this.nv.opts.atlasOutline = show.lung ? 1 : 0;
      setLayers(this.nv, vols);
      if (this.nv3) await this.load3d();
    });
  }

  /** The 3-D view (a second WebGL context, made on request): the lungs as blue glass with
   * the lesions inside, turned by dragging. */
  show3d(canvas) {
    return this.queue(async () => {
      if (!this.nv3) {
        this.nv3 = new Niivue({
          backColor: [0, 0, 0, 1], isOrientCube: true, isColorbar: false, show3Dcrosshair: false,
          dragAndDropEnabled: false, loadingText: "", logLevel: "error", textHeight: 0.04,
        });
        await this.nv3.attachToCanvas(canvas);
        this.nv3.setSliceType(SLICE_TYPE.RENDER);
        this.nv3.setRenderAzimuthElevation(200, 10); // from the front, a little to the right
      }
      await this.load3d();
    });
  }

  async load3d() {
    const { lesions, lung } = this.layers;
    if (!lung || !lesions) return setLayers(this.nv3, []);
    setLayers(this.nv3, [await labels("lung3d", lung.slice(), GLASS_LUT, 0.25), await labels("lesions3d", lesions.slice(), LESION_LUT, 1)]);
  }

  /** Put the crosshair on canonical voxel `v` without reporting it back. */
  setVoxel(v) {
    return this.queue(() => {
      if (!this.scan || !this.nv.volumes.length) return;
      const frac = this.nv.mm2frac(voxelToRas(this.scan.affine, v));
      this.quiet = true;
      try {
        this.nv.scene.crosshairPos = [frac[0], frac[1], frac[2]];
        this.nv.drawScene();
      } finally {
        this.quiet = false;
      }
    });
  }

  setWindow(win) {
    return this.queue(() => {
      const hu = this.nv.volumes[0];
      if (!hu) return;
      hu.cal_min = win.level - win.width / 2;
      hu.cal_max = win.level + win.width / 2;
      this.nv.updateGLVolume();
    });
  }

  /** Lesion overlay and lung outline switches, as in the axial pane (one upload). */
  setShow(show) {
    return this.queue(() => {
      const v = this.nv.volumes;
      if (v.length < 3) return;
      // The lung map is clear inside; only NiiVue's outline of label maps draws it.
      v[1].opacity = show.lesions ? show.opacity : 0;
      this.nv.opts.atlasOutline = show.lung ? 1 : 0;
      this.nv.updateGLVolume();
    });
  }

  /** Where canonical voxel `v` is drawn in each plane: CSS pixels within the planes' canvas
   * (for the browser tests and the page's own checks), with each tile's rectangle. */
  locate(v) {
    if (!this.scan || !this.nv.volumes.length) return null;
    const frac = this.nv.mm2frac(voxelToRas(this.scan.affine, v));
    const dpr = this.nv.uiData.dpr || 1;
    const out = {};
    for (const [name, type] of [["coronal", SLICE_TYPE.CORONAL], ["sagittal", SLICE_TYPE.SAGITTAL]]) {
      const p = this.nv.frac2canvasPosWithTile(frac, type);
      const tile = this.nv.screenSlices.find((s) => s.axCorSag === type);
      if (!p || !tile) continue;
      out[name] = { x: p.pos[0] / dpr, y: p.pos[1] / dpr, tile: tile.leftTopWidthHeight.map((t) => t / dpr) };
    }
    return out;
  }
}
