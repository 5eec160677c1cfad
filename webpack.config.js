// Bundles www/ into dist/: the page script, the inference worker (which owns the wasm module),
// and copies the static page, styles and model files. Everything is served from one origin.
const crypto = require("crypto");
const fs = require("fs");
const path = require("path");
const CopyPlugin = require("copy-webpack-plugin");

// The service worker's cache is named after a hash of everything it precaches (sources of the
// bundles, the wasm engine, the model), so a new model or engine installs as a new, complete
// cache instead of being mixed file by file with the old one. Every shipped model counts: the
// ones not precached (sw.js precaches the default, v2) are still cached when first fetched, and
// must not outlive a retrained copy.
const modelFiles = ["ctscreen-v2", "ctscreen-v1"].flatMap((m) =>
  ["config.json", "model.q8"].map((f) => `models/${m}/${f}`));
const hashed = ["www", "package-lock.json", "pkg/ctscreen_bg.wasm", "pkg/ctscreen.js", ...modelFiles];
function buildHash() {
  const h = crypto.createHash("sha256");
  const add = (p) => {
    const full = path.resolve(__dirname, p);
    if (!fs.existsSync(full)) return;
    if (fs.statSync(full).isDirectory()) {
      for (const name of fs.readdirSync(full).sort()) add(path.join(p, name));
    } else {
      h.update(p);
      h.update(fs.readFileSync(full));
    }
  };
  hashed.forEach(add);
  return h.digest("hex").slice(0, 16);
}

module.exports = {
  entry: "./www/index.js",
  output: {
    path: path.resolve(__dirname, "dist"),
    filename: "main.js",
    // Stable names, so the service worker can precache them.
    chunkFilename: "[name].js",
    assetModuleFilename: "[name][ext]",
    clean: true,
  },
  experiments: { asyncWebAssembly: true },
  // One chunk per dynamic import: the viewer (NiiVue) whole in viewer.js, which the service worker
  // precaches by name. NiiVue's own lazy chunks (zarr codecs) are for formats the page never
  // gives it.
  optimization: { splitChunks: false },
  performance: { hints: false },
  plugins: [
    new CopyPlugin({
      patterns: [
        { from: "www/index.html", to: "index.html" },
        { from: "www/style.css", to: "style.css" },
        {
          from: "www/sw.js",
          to: "sw.js",
          transform: (content) => content.toString().replace("__BUILD_HASH__", buildHash()),
        },
        { from: "www/manifest.webmanifest", to: "manifest.webmanifest" },
        // Both models; v1 (`?model=v1`) is not precached: offline use gets the default.
        ...modelFiles.map((f) => ({ from: f, to: f })),
      ],
    }),
  ],
};
