// IndexedDB: the device key (a non-extractable CryptoKey pair, stored as the objects
// themselves, which IndexedDB can hold without exporting them) and the permits.
const DB_NAME = 'gatepass-wallet'
const DB_VERSION = 1

function open () {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION)
    req.onupgradeneeded = () => {
      req.result.createObjectStore('keys')
      req.result.createObjectStore('permits', { keyPath: 'id' })
    }
    req.onsuccess = () => resolve(req.result)
    req.onerror = () => reject(req.error)
  })
}

async function run (storeName, mode, fn) {
  const db = await open()
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(storeName, mode)
      const req = fn(tx.objectStore(storeName))
      tx.oncomplete = () => resolve(req ? req.result : undefined)
      tx.onerror = () => reject(tx.error)
      tx.onabort = () => reject(tx.error)
    })
  } finally {
    db.close()
  }
}

export const getDeviceKey = () => run('keys', 'readonly', (s) => s.get('device'))
export const putDeviceKey = (value) => run('keys', 'readwrite', (s) => s.put(value, 'device'))
export const listPermits = () => run('permits', 'readonly', (s) => s.getAll())
export const putPermit = (record) => run('permits', 'readwrite', (s) => s.put(record))
export const deletePermit = (id) => run('permits', 'readwrite', (s) => s.delete(id))

/** Make the device key once: P-256 ECDSA, private key non-extractable. */
export async function ensureDeviceKey () {
  const held = await getDeviceKey()
  if (held) return held
  const pair = await crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']
  )
  const spki = new Uint8Array(await crypto.subtle.exportKey('spki', pair.publicKey))
  const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey))
  const value = { privateKey: pair.privateKey, publicKey: pair.publicKey, spki, raw, created: Date.now() }
  await putDeviceKey(value)
  return value
}
