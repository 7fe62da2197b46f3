// Precache every file of the wallet, then serve from the cache first: the wallet must
// open and present permits with no network at the gate. Bump VERSION with any file change.
const VERSION = 'gatepass-wallet-5'
const FILES = [
  './', 'index.html', 'app.js', 'gpp.js', 'store.js', 'i18n.js', 'style.css',
  'manifest.webmanifest', 'icons/icon.svg', 'icons/icon-192.png', 'icons/icon-512.png',
  'vendor/qrcode-generator/qrcode.mjs', 'vendor/base45/base45.js', 'vendor/cborg/cborg.js',
  'vendor/cborg/lib/0uint.js', 'vendor/cborg/lib/1negint.js', 'vendor/cborg/lib/2bytes.js',
  'vendor/cborg/lib/3string.js', 'vendor/cborg/lib/4array.js', 'vendor/cborg/lib/5map.js',
  'vendor/cborg/lib/6tag.js', 'vendor/cborg/lib/7float.js', 'vendor/cborg/lib/bl.js',
  'vendor/cborg/lib/byte-utils.js', 'vendor/cborg/lib/common.js', 'vendor/cborg/lib/decode.js',
  'vendor/cborg/lib/encode.js', 'vendor/cborg/lib/is.js', 'vendor/cborg/lib/jump.js',
  'vendor/cborg/lib/tagged.js', 'vendor/cborg/lib/token.js'
]

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(VERSION).then((cache) => cache.addAll(FILES)).then(() => self.skipWaiting()))
})

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== VERSION) await caches.delete(name)
    await self.clients.claim()
  })())
})

self.addEventListener('fetch', (event) => {
  if (event.request.method !== 'GET') return
  event.respondWith((async () => {
    const cache = await caches.open(VERSION)
    const hit = await cache.match(event.request, { ignoreSearch: true })
    if (hit) return hit
    return fetch(event.request)
  })())
})
