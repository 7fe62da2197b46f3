// The pilgrim wallet: one device key, the permits, and a live presentation QR.
import qrcode from './vendor/qrcode-generator/qrcode.mjs'
import { LANGS, TYPES, pickLang } from './i18n.js'
import { DEFAULT_PERIOD_S, PermitUnreadable, boundTo, hex, makePresentation, permitTexts, readPermit, spkiPem } from './gpp.js'
import * as store from './store.js'

const $ = (id) => document.getElementById(id)
const state = { lang: 'en', device: null, permits: [], showing: null, timer: null, renewing: false, wake: null }

function t (key, vars) {
  const s = LANGS[state.lang][key] ?? LANGS.en[key] ?? key
  return vars ? s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k])) : s
}

function typeName (ptype) {
  return (TYPES[state.lang] || {})[ptype] || TYPES.en[ptype] || ptype
}

function applyLang () {
  const L = LANGS[state.lang]
  document.documentElement.lang = state.lang
  document.documentElement.dir = L.dir
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n)
  document.title = t('title')
  renderPermits()
  if (state.showing) renderPresentationDetails()
}

/** Draw a QR (error correction M, alphanumeric when the text allows) on a canvas,
 * whole pixels per module and a 4-module quiet zone. */
function drawQr (canvas, text, maxPx) {
  const qr = qrcode(0, 'M')
  qr.addData(text, /^[0-9A-Z $%*+\-./:]*$/.test(text) ? 'Alphanumeric' : 'Byte')
  qr.make()
  const n = qr.getModuleCount()
  const cell = Math.max(2, Math.floor(maxPx / (n + 8)))
  const size = (n + 8) * cell
  canvas.width = size
  canvas.height = size
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#fff'
  ctx.fillRect(0, 0, size, size)
  ctx.fillStyle = '#000'
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) ctx.fillRect((c + 4) * cell, (r + 4) * cell, cell, cell)
    }
  }
  canvas.dataset.version = String((n - 17) / 4)
  return n
}

function qrWidth () {
  return Math.min(420, document.documentElement.clientWidth - 48)
}

const fmtTime = (epochS) => new Date(epochS * 1000).toLocaleString(state.lang, {
  dateStyle: 'medium', timeStyle: 'short', timeZone: 'Asia/Riyadh'
})

function detailRows (dl, p) {
  dl.replaceChildren()
  const rows = [['type', typeName(p.type)], ['site', p.site], ['slot', `${fmtTime(p.slotStart)} – ${fmtTime(p.slotEnd)}`],
    ['party', String(p.party)], ['initials', `${p.initials} ${p.docDigits ? '…' + p.docDigits : ''}`.trim()]]
  for (const [k, v] of rows) {
    const dt = document.createElement('dt')
    dt.textContent = t(k)
    const dd = document.createElement('dd')
    const value = document.createElement('bdi') // Latin initials and digits inside Arabic
    value.textContent = v
    dd.append(value)
    dl.append(dt, dd)
  }
}

function renderPermits () {
  const ul = $('permits')
  ul.replaceChildren()
  $('permits-none').hidden = state.permits.length > 0
  for (const p of state.permits) {
    const li = document.createElement('li')
    li.dataset.permitId = p.id
    const h = document.createElement('h3')
    h.textContent = typeName(p.type)
    const dl = document.createElement('dl')
    dl.className = 'details'
    detailRows(dl, p)
    const row = document.createElement('div')
    row.className = 'row'
    const show = document.createElement('button')
    show.type = 'button'
    show.className = 'show'
    show.textContent = t('show')
    show.onclick = () => startPresenting(p)
    const remove = document.createElement('button')
    remove.type = 'button'
    remove.className = 'secondary remove'
    remove.textContent = t('remove')
    remove.onclick = async () => {
      if (!window.confirm(t('remove_confirm'))) return
      await store.deletePermit(p.id)
      if (state.showing && state.showing.id === p.id) stopPresenting()
      await loadPermits()
    }
    row.append(show, remove)
    li.append(h, dl, row)
    ul.append(li)
  }
}

async function loadPermits () {
  const records = await store.listPermits()
  const permits = []
  for (const rec of records) {
    try { permits.push(await readPermit(rec.text)) } catch (e) { /* unreadable: skip */ }
  }
  permits.sort((a, b) => a.slotStart - b.slotStart)
  state.permits = permits
  renderPermits()
}

async function addPermit (input) {
  // One text, or every line of a permits file from the issuer (a family's permits).
  const out = $('add-result')
  out.classList.remove('bad')
  let added = 0
  let failed = null
  for (const text of permitTexts(input)) {
    try {
      const p = await readPermit(text)
      await store.putPermit({ id: p.id, text: p.text, added: Date.now() })
      added++
    } catch (e) {
      failed = e
    }
  }
  if (added) {
    $('add-text').value = ''
    await loadPermits()
  }
  // data-i18n: the message follows a change of language like every other label.
  if (failed || !added) {
    out.classList.add('bad')
    out.dataset.i18n = failed instanceof PermitUnreadable ? failed.code : 'add_bad'
  } else {
    out.dataset.i18n = 'add_ok'
  }
  out.textContent = t(out.dataset.i18n)
}

function renderPresentationDetails () {
  detailRows($('present-details'), state.showing)
}

function startPresenting (p) {
  stopPresenting()
  state.showing = p
  const section = $('present')
  section.hidden = false
  section.dataset.permitId = p.id
  renderPresentationDetails()
  const note = $('present-note')
  const bound = state.device && boundTo(p, state.device.raw)
  section.dataset.mode = p.cnf ? (bound ? 'live' : 'other-device') : 'static'
  if (p.cnf && !bound) {
    // The key that could sign for this permit is on another phone: nothing to show.
    note.hidden = false
    note.textContent = t('bound_other')
    $('qr').hidden = true
    $('countdown').textContent = ''
    delete section.dataset.text
  } else if (!p.cnf) {
    note.hidden = false
    note.textContent = t('paper')
    $('qr').hidden = false
    drawQr($('qr'), p.text, qrWidth())
    section.dataset.text = p.text
    $('countdown').textContent = ''
  } else {
    note.hidden = true
    $('qr').hidden = false
    tick()
    state.timer = setInterval(tick, 250)
    // Keep the screen on while the live code is shown (where the browser allows it).
    if (navigator.wakeLock) navigator.wakeLock.request('screen').then((l) => { state.wake = l }, () => {})
  }
  section.scrollIntoView({ block: 'start' })
}

function stopPresenting () {
  if (state.timer) clearInterval(state.timer)
  state.timer = null
  if (state.wake) state.wake.release().catch(() => {})
  state.wake = null
  state.showing = null
  const section = $('present')
  section.hidden = true
  delete section.dataset.text
  delete section.dataset.step
}

async function tick () {
  const p = state.showing
  const section = $('present')
  const now = Date.now()
  $('clock').textContent = new Date(now).toLocaleTimeString(state.lang)
  const period = DEFAULT_PERIOD_S
  const step = Math.floor(now / 1000 / period)
  if (String(step) !== section.dataset.step && !state.renewing) {
    state.renewing = true
    try {
      const pres = await makePresentation(p.cose, state.device.privateKey, now, period)
      if (state.showing !== p) return
      drawQr($('qr'), pres.text, qrWidth())
      Object.assign(section.dataset, {
        text: pres.text, step: String(pres.step), period: String(pres.periodS), signedAt: String(now)
      })
    } finally {
      state.renewing = false
    }
  }
  const next = (step + 1) * period * 1000
  const left = Math.max(0, Math.ceil((next - now) / 1000))
  $('countdown').textContent = t('countdown', { s: left })
  $('meter-fill').style.inlineSize = `${(100 * (next - now)) / (period * 1000)}%`
}

async function showDevice () {
  const d = state.device
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', d.spki))
  $('key-id').textContent = hex(digest.slice(0, 4)).toUpperCase().match(/../g).join(' ')
  const pem = spkiPem(d.spki)
  $('pem').textContent = pem
  $('pem-download').href = URL.createObjectURL(new Blob([pem], { type: 'application/x-pem-file' }))
  $('device').dataset.spkiPem = pem
  $('enrol-show').onclick = () => {
    const box = $('enrol')
    box.hidden = !box.hidden
    if (!box.hidden) drawQr($('enrol-qr'), pem, qrWidth())
  }
}

async function main () {
  const select = $('lang')
  for (const [code, L] of Object.entries(LANGS)) select.append(new Option(L.name, code))
  state.lang = pickLang(localStorage.getItem('gatepass-wallet-lang'), navigator.languages)
  select.value = state.lang
  select.onchange = () => {
    state.lang = select.value
    localStorage.setItem('gatepass-wallet-lang', state.lang)
    applyLang()
  }
  applyLang()
  $('present-close').onclick = stopPresenting
  $('add').onclick = () => addPermit($('add-text').value)
  $('add-file').onchange = async (ev) => {
    const file = ev.target.files[0]
    if (file) await addPermit(await file.slice(0, 64 * 1024).text())
    ev.target.value = ''
  }
  if (!window.crypto || !crypto.subtle || !window.indexedDB) {
    $('status').textContent = t('no_crypto')
    return
  }
  try {
    state.device = await store.ensureDeviceKey()
  } catch (e) {
    $('status').textContent = t('no_crypto')
    $('status').classList.add('bad')
    return
  }
  $('status').dataset.i18n = 'key_ready'
  $('status').textContent = t('key_ready')
  document.body.dataset.ready = 'true'
  await showDevice()
  await loadPermits()
}

if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js').catch(() => { /* works online without it */ })
}
main()
