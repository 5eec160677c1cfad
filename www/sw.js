// Service worker: after one visit the page, the engine and the model work offline. Same-origin
// GETs only; everything is served cache-first and refreshed in the background when online.
const CACHE = "ctscreen-v1";
const PRECACHE = [
  "./", "index.html", "main.js", "worker.js", "style.css", "manifest.webmanifest",
  "ctscreen_bg.wasm", "models/ctscreen-v1/config.json", "models/ctscreen-v1/model.bpk",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE)).then(() => self.skipWaiting()));
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
      const refresh = fetch(req)
        .then((res) => { if (res.ok) cache.put(req, res.clone()); return res; })
        .catch(() => undefined);
      if (cached) {
        event.waitUntil(refresh);
        return cached;
      }
      const res = await refresh;
      return res ?? new Response("offline and not cached", { status: 503 });
    }),
  );
});
