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

export class MprView {
  /**
   * @param {HTMLCanvasElement} planes coronal (top) and sagittal (bottom)
   * @param {HTMLCanvasElement} render the 3-D view
   * @param {(voxel: number[]) => void} onMove the crosshair moved in a pane (canonical voxel)
   * @param {(win: {width:number, level:number}) => void} onWindow right-drag changed the window
   */
  constructor(planes, render, onMove, onWindow) {
    this.onMove = onMove;
    this.onWindow = onWindow;
    this.scan = null; // {id, affine, dims}
    this.layers = {}; // what → bytes of the current scan
    this.chain = Promise.resolve();
    this.nv = new Niivue({
      backColor: [0, 0, 0, 1], crosshairColor: [0, 0.9, 0.46, 0.9], crosshairWidth: 1,
      isRadiologicalConvention: true, // patient right on screen left, as in the axial pane
      multiplanarShowRender: SHOW_RENDER.NEVER, isOrientCube: false, isColorbar: false,
      show3Dcrosshair: false, dragAndDropEnabled: false, loadingText: "", atlasOutline: 0,
      isNearestInterpolation: true, logLevel: "error", textHeight: 0.04,
    });
    this.nv3 = new Niivue({
      backColor: [0, 0, 0, 1], isOrientCube: true, isColorbar: false, show3Dcrosshair: false,
      dragAndDropEnabled: false, loadingText: "", logLevel: "error", textHeight: 0.04,
    });
    this.attached = Promise.all([this.nv.attachToCanvas(planes), this.nv3.attachToCanvas(render)]).then(() => {
      this.nv.setMouseEventConfig({
        leftButton: { primary: DRAG_MODE.crosshair }, rightButton: DRAG_MODE.windowing, centerButton: DRAG_MODE.pan,
      });
      this.nv.setCustomLayout([
        { sliceType: SLICE_TYPE.CORONAL, position: [0, 0, 1, 0.5] },
        { sliceType: SLICE_TYPE.SAGITTAL, position: [0, 0.5, 1, 0.5] },
      ]);
      this.nv3.setSliceType(SLICE_TYPE.RENDER);
      this.nv3.setRenderAzimuthElevation(200, 10); // from the front, a little to the right
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

  /** A new scan: drop the volumes of the last one. */
  reset(id, affine, dims, hu) {
    this.scan = { id, affine, dims, hu };
    this.layers = {};
    return this.queue(async () => {
      for (const nv of [this.nv, this.nv3]) while (nv.volumes.length) nv.removeVolume(nv.volumes[nv.volumes.length - 1]);
    });
  }

  /** A NIfTI copy from the worker: "hu", "lesions" or "lung" of scan `id`. */
  load(id, what, bytes, win, show) {
    if (!this.scan || id !== this.scan.id) return Promise.resolve();
    if (what !== "hu") this.layers[what] = bytes;
    return this.queue(async () => {
      // NiiVue keeps the buffer it is given: the label maps, loaded again into both views
      // whenever one of them changes, go as copies; the HU volume goes as it is, once.
      const image = (name, b, opts) => NVImage.loadFromUrl({ url: `${name}.nii`, buffer: name === "scan" ? b.buffer : b.slice().buffer, ...opts });
      if (what === "hu") {
        const lo = win.level - win.width / 2;
        const hu = await image("scan", bytes, { colormap: "gray", cal_min: lo, cal_max: lo + win.width, trustCalMinMax: true });
        while (this.nv.volumes.length) this.nv.removeVolume(this.nv.volumes[this.nv.volumes.length - 1]);
        this.nv.addVolume(hu);
        this.layers = {};
      } else {
        if (!this.nv.volumes.length) return;
        // Lesions then the lung outline above them, in both views; the 3-D view's base is the lung.
        while (this.nv.volumes.length > 1) this.nv.removeVolume(this.nv.volumes[this.nv.volumes.length - 1]);
        while (this.nv3.volumes.length) this.nv3.removeVolume(this.nv3.volumes[this.nv3.volumes.length - 1]);
        const { lesions, lung } = this.layers;
        const overlay = async (nv, name, b, lut, opacity) => {
          const v = await image(name, b, { opacity });
          v.setColormapLabel(lut);
          nv.addVolume(v);
        };
        if (lung) await overlay(this.nv3, "lung3d", lung, GLASS_LUT, 0.25);
        if (lesions) {
          await overlay(this.nv, "lesions", lesions, LESION_LUT, show.lesions ? show.opacity : 0);
          if (this.nv3.volumes.length) await overlay(this.nv3, "lesions3d", lesions, LESION_LUT, 1);
        }
        if (lung) await overlay(this.nv, "lung", lung, LUNG_LUT, 1);
        this.nv.opts.atlasOutline = show.lung ? 1 : 0;
        this.nv3.updateGLVolume();
      }
      this.nv.updateGLVolume();
    });
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

  /** Lesion overlay and lung outline switches, as in the axial pane. */
  setShow(show) {
    return this.queue(() => {
      const v = this.nv.volumes;
      if (v.length > 1) this.nv.setOpacity(1, show.lesions ? show.opacity : 0);
      // The lung map is clear inside; only NiiVue's outline of label maps draws it.
      if (this.nv.opts.atlasOutline !== (show.lung ? 1 : 0)) this.nv.setAtlasOutline(show.lung ? 1 : 0);
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
