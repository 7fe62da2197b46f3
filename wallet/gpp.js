// The gatepass formats the wallet needs: read a `GP1:` permit, make a `GPP1:` presentation.
// Specification: docs/presentation-format.md. CBOR and Base45 come from vendored npm
// packages (vendor/); zlib from the browser's DecompressionStream.
import * as cborg from './vendor/cborg/cborg.js'
import * as base45 from './vendor/base45/base45.js'

export const PERMIT_PREFIX = 'GP1:'
export const PRESENTATION_PREFIX = 'GPP1:'
export const DEFAULT_PERIOD_S = 15
export const MAX_PERMIT_TEXT = 1200
export const MAX_PERMIT_BYTES = 1024

const CLAIM = { iss: 1, exp: 4, nbf: 5, iat: 6, cti: 7, cnf: 8, type: -1, site: -2, gates: -3, slot: -4, party: -5, holder: -6, route: -8, departure: -9 }
// CBOR tag 18 (COSE_Sign1): keep its content, the only tag a permit has.
const TAGS = []
TAGS[18] = (content) => ({ tag: 18, value: content() })
const PROTECTED_ES256 = cborg.encode(new Map([[1, -7]])) // {1: -7}: a1 01 26

/** Why a text cannot be stored as a permit; `code` is an i18n key. */
export class PermitUnreadable extends Error {
  constructor (code, detail) {
    super(detail || code)
    this.code = code
  }
}

export function hex (bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
}

async function inflate (bytes) {
  // zlib (RFC 1950) is what the Compression Streams API calls 'deflate'.
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'))
  const reader = stream.getReader()
  const parts = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.length
    if (size > MAX_PERMIT_BYTES) {
      await reader.cancel()
      throw new PermitUnreadable('add_bad', 'permit inflates beyond 1024 bytes')
    }
    parts.push(value)
  }
  const out = new Uint8Array(size)
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** The permit texts in what a pilgrim pasted or opened: a GP1: text (line breaks from
 * messaging apps and e-mail removed: never part of Base45, while a space is), or JSON
 * lines from `gatepass issue` ({"payload": "GP1:..."}, one permit per line). */
export function permitTexts (input) {
  const raw = String(input).trim()
  if (raw.startsWith('{')) {
    return raw.split(/\r?\n/).filter((line) => line.trim()).map((line) => {
      try {
        const payload = JSON.parse(line).payload
        return typeof payload === 'string' ? payload.trim() : ''
      } catch (e) {
        return ''
      }
    })
  }
  return [raw.replace(/[\r\n\t]/g, '').trim()]
}

export function permitText (input) {
  return permitTexts(input)[0] || ''
}

/** Read a permit (not verified: the gate verifies; the wallet only shows and presents it). */
export async function readPermit (input) {
  const text = permitText(input)
  if (!text.startsWith(PERMIT_PREFIX) || text.length > MAX_PERMIT_TEXT) {
    throw new PermitUnreadable('add_bad', 'not a GP1: permit text')
  }
  let bytes
  try {
    bytes = base45.decode(text.slice(PERMIT_PREFIX.length))
  } catch (e) {
    throw new PermitUnreadable('add_bad', 'Base45: ' + e.message)
  }
  if (bytes[0] === 0x78) bytes = await inflate(bytes)
  if (bytes[0] !== 0xd2 || bytes.length > MAX_PERMIT_BYTES) {
    throw new PermitUnreadable('add_bad', 'not a COSE_Sign1')
  }
  let claims
  try {
    const sign1 = cborg.decode(bytes, { tags: TAGS, useMaps: true }).value
    claims = cborg.decode(sign1[2], { useMaps: true })
  } catch (e) {
    throw new PermitUnreadable('add_bad', 'CBOR: ' + e.message)
  }
  const cti = claims.get(CLAIM.cti)
  const slot = claims.get(CLAIM.slot) || [0, 0]
  const holder = claims.get(CLAIM.holder) || ['', '', null]
  if (!(cti instanceof Uint8Array) || cti.length !== 16) {
    throw new PermitUnreadable('add_bad', 'no permit id')
  }
  let cnf = null
  const confirmation = claims.get(CLAIM.cnf)
  if (confirmation instanceof Map && confirmation.get(1) instanceof Map) {
    const key = confirmation.get(1)
    cnf = { x: key.get(-2), y: key.get(-3) } // y: 32 bytes, or a bool (its lowest bit)
  }
  return {
    id: hex(cti),
    text,
    cose: bytes,
    type: String(claims.get(CLAIM.type) || ''),
    site: String(claims.get(CLAIM.site) || ''),
    gates: claims.get(CLAIM.gates) || [],
    slotStart: Number(slot[0]),
    slotEnd: Number(slot[0]) + Number(slot[1]),
    party: Number(claims.get(CLAIM.party) || 1),
    initials: String(holder[0] || ''),
    docDigits: String(holder[1] || ''),
    route: claims.get(CLAIM.route) || null,
    departure: claims.get(CLAIM.departure) ?? null,
    cnf
  }
}

/** Does the permit's cnf key equal this device's public key (raw 04||x||y, 65 bytes)? */
export function boundTo (permit, publicRaw) {
  if (!permit.cnf || !(permit.cnf.x instanceof Uint8Array)) return false
  const x = publicRaw.slice(1, 33)
  const y = publicRaw.slice(33, 65)
  if (hex(x) !== hex(permit.cnf.x)) return false
  if (typeof permit.cnf.y === 'boolean') return permit.cnf.y === ((y[31] & 1) === 1)
  return permit.cnf.y instanceof Uint8Array && hex(permit.cnf.y) === hex(y)
}

/** The presentation text for time `nowMs`: the permit plus a proof signed by `privateKey`
 * over {1: step, 2: period}, with SHA-256(permit) as external AAD. */
export async function makePresentation (permitCose, privateKey, nowMs, periodS = DEFAULT_PERIOD_S) {
  const step = Math.floor(nowMs / 1000 / periodS)
  const payload = cborg.encode(new Map([[1, step], [2, periodS]]))
  const aad = new Uint8Array(await crypto.subtle.digest('SHA-256', permitCose))
  const toBeSigned = cborg.encode(['Signature1', PROTECTED_ES256, aad, payload])
  // WebCrypto's ECDSA signature is already IEEE P1363 r||s, what COSE wants.
  const signature = new Uint8Array(
    await crypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, privateKey, toBeSigned)
  )
  const proof = cborg.encode(new cborg.Tagged(18, [PROTECTED_ES256, new Map(), payload, signature]))
  const body = cborg.encode([permitCose, proof])
  return {
    text: PRESENTATION_PREFIX + base45.encode(new Uint8Array(body)),
    step,
    periodS,
    validFromMs: step * periodS * 1000,
    nextMs: (step + 1) * periodS * 1000
  }
}

/** PEM text of a DER SubjectPublicKeyInfo. */
export function spkiPem (spki) {
  const b64 = btoa(String.fromCharCode(...spki))
  const lines = b64.match(/.{1,64}/g).join('\n')
  return `-----BEGIN PUBLIC KEY-----\n${lines}\n-----END PUBLIC KEY-----\n`
}
