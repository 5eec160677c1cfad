// Service worker: after one visit the page, the engine and the model work offline. Same-origin
// GETs only, served cache-first. The cache is versioned by a hash of the build (webpack writes it
// in), so that the page, the wasm engine and the model always come from one build: a new build
// changes this file, the browser installs the new worker, which fetches a complete new cache and
// drops the old one when it takes over.
const CACHE = "ctscreen-__BUILD_HASH__";
const PRECACHE = [
  "./", "index.html", "main.js", "viewer.js", "worker.js", "model-worker.js", "style.css", "manifest.webmanifest",
  "ctscreen_bg.wasm", "models/ctscreen-v2/config.json", "models/ctscreen-v2/model.q8",
];

self.addEventListener("install", (event) => {
  // "reload": past the HTTP cache, so a new build never precaches an older file.
  const fresh = PRECACHE.map((u) => new Request(u, { cache: "reload" }));
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(fresh)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const req = event.request;
  if (req.method !== "GET" || new URL(req.url).origin !== self.location.origin) return;
  event.respondWith(
    caches.open(CACHE).then(async (cache) => {
      const cached = await cache.match(req, { ignoreSearch: true });
      if (cached) return cached;
      try {
        const res = await fetch(req);
        if (res.ok) cache.put(req, res.clone());
        return res;
      } catch {
        return new Response("offline and not cached", { status: 503 });
      }
    }),
  );
});
