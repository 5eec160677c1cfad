// Bundles www/ into dist/: the page script, the inference worker (which owns the wasm module),
// and copies the static page, styles and model files. Everything is served from one origin.
const path = require("path");
const CopyPlugin = require("copy-webpack-plugin");

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
  performance: { hints: false },
  plugins: [
    new CopyPlugin({
      patterns: [
        { from: "www/index.html", to: "index.html" },
        { from: "www/style.css", to: "style.css" },
        { from: "www/sw.js", to: "sw.js" },
        { from: "www/manifest.webmanifest", to: "manifest.webmanifest" },
        { from: "models/ctscreen-v1/config.json", to: "models/ctscreen-v1/config.json" },
        { from: "models/ctscreen-v1/model.bpk", to: "models/ctscreen-v1/model.bpk" },
      ],
    }),
  ],
};
