// Attendant console: renders the agent's snapshot, sends the attendant's actions.
// Talks to its own origin only (/api/...). Every text from the agent goes in with
// textContent, never innerHTML: a permit field must not be able to inject markup.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG_NS = "http://www.w3.org/2000/svg";
  // Distinct shapes, not only colours: tick, cross, magnifier, clock, dot.
  const ICONS = {
    admit: ["M4 12.5l5 5L20 6.5"],
    deny: ["M5 5l14 14", "M19 5L5 19"],
    inspect: ["M10.5 4a6.5 6.5 0 1 1 0 13a6.5 6.5 0 1 1 0-13z", "M15.5 15.5L21 21"],
    untrusted_time: ["M12 3a9 9 0 1 1 0 18a9 9 0 1 1 0-18z", "M12 7v5l3.5 2.5"],
    clock: ["M12 3a9 9 0 1 1 0 18a9 9 0 1 1 0-18z", "M12 7v5l3.5 2.5"],
    none: ["M12 9a3 3 0 1 1 0 6a3 3 0 1 1 0-6z"],
    camera: ["M3 8h4l2-3h6l2 3h4v11H3z", "M12 10a3.5 3.5 0 1 1 0 7a3.5 3.5 0 1 1 0-7z"],
  };
  const VERDICTS = ["admit", "deny", "inspect", "untrusted_time"];

  const state = {
    snap: null,
    cats: new Map(), // lang -> catalogue JSON
    langs: [],
    attLang: localStorage.getItem("gp.attLang") || null,
    pilLang: localStorage.getItem("gp.pilLang") || null,
    hc: 1, // head count being entered
    hcFor: null, // decision id the head count belongs to
    ov: { action: "admit", reason: null, party: 1 },
    closeArmed: null,
    source: null, // the frame source while it is down (for the banner's seconds)
    sourceAt: 0, // when that was received (Date.now())
  };

  function icon(el, name) {
    el.replaceChildren();
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("width", "100%");
    svg.setAttribute("height", "100%");
    for (const d of ICONS[name] || ICONS.none) {
      const p = document.createElementNS(SVG_NS, "path");
      p.setAttribute("d", d);
      p.setAttribute("fill", "none");
      p.setAttribute("stroke", "currentColor");
      p.setAttribute("stroke-width", "3");
      p.setAttribute("stroke-linecap", "round");
      p.setAttribute("stroke-linejoin", "round");
      svg.appendChild(p);
    }
    el.appendChild(svg);
    el.dataset.icon = name;
  }

  // ---- catalogue ------------------------------------------------------------------
  async function loadCat(lang) {
    if (state.cats.has(lang)) return state.cats.get(lang);
    const r = await fetch("/api/i18n/" + encodeURIComponent(lang));
    if (!r.ok) throw new Error("no catalogue for " + lang);
    const cat = await r.json();
    state.cats.set(lang, cat);
    return cat;
  }
  const en = () => state.cats.get("en") || { attendant: {}, pilgrim: {}, ui: {}, dir: "ltr", lang: "en" };

  // A line in `lang` for `audience`, or English (and English's direction) when missing.
  function line(code, lang, audience) {
    const cat = state.cats.get(lang);
    if (cat && cat[audience] && cat[audience][code]) {
      return { text: cat[audience][code], lang: cat.lang, dir: cat.dir };
    }
    const e = en();
    return { text: (e[audience] && e[audience][code]) || code, lang: "en", dir: "ltr" };
  }
  function ui(key) {
    const cat = state.cats.get(state.attLang);
    return (cat && cat.ui && cat.ui[key]) || en().ui[key] || key;
  }
  // Same rule as gate_agent.i18n.decision_messages.
  function codes(verdict, reason) {
    const att = reason || verdict;
    let pil = verdict;
    if (verdict === "admit") pil = "admit";
    else if (reason && en().pilgrim[reason]) pil = reason;
    return { att, pil };
  }

  function applyUi() {
    const cat = state.cats.get(state.attLang) || en();
    document.documentElement.lang = cat.lang;
    document.documentElement.dir = cat.dir;
    document.title = ui("title");
    for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = ui(el.dataset.i18n);
    for (const el of document.querySelectorAll("[data-i18n-placeholder]")) {
      el.placeholder = ui(el.dataset.i18nPlaceholder);
    }
    buildReasons();
    if (state.snap) render(state.snap);
  }

  // ---- formatting -------------------------------------------------------------------
  function fmtTime(epoch, withDate) {
    if (epoch === null || epoch === undefined) return "–";
    const d = new Date(epoch * 1000);
    const opts = { hour: "2-digit", minute: "2-digit", hourCycle: "h23" };
    if (withDate) Object.assign(opts, { day: "2-digit", month: "short" });
    return new Intl.DateTimeFormat("en-GB", opts).format(d);
  }
  // The date only when it is not the gate's today: the attendant needs the hours.
  function sameDay(a, b) {
    const x = new Date(a * 1000);
    const y = new Date(b * 1000);
    return x.toDateString() === y.toDateString();
  }
  function fmtSlot(a, b) {
    if (a === null || a === undefined) return "–";
    const now = state.snap && state.snap.clock && state.snap.clock.now;
    const withDate = !(now && sameDay(a, now));
    return fmtTime(a, withDate) + "–" + fmtTime(b, false);
  }
  function setText(id, text) { $(id).textContent = text === null || text === undefined ? "–" : String(text); }
  function verdictWord(v) { return ui("verdict_" + v); }

  // ---- rendering ---------------------------------------------------------------------
  function render(s) {
    state.snap = s;
    document.body.className = "mode-" + s.mode;
    document.body.dataset.mode = s.mode;
    setText("gate-name", s.gate);
    setText("site-name", s.site);
    setText("mode-chip", ui("mode_" + s.mode));
    renderClock(s.clock || {});
    renderDecision(s.last);
    renderCounters(s.counters || {});
    renderTrip(s);
    renderHealth(s.health || {}, s.clock || {});
    renderSource((s.health || {}).source);
    renderRecent(s.recent || []);
  }

  function renderClock(c) {
    const untrusted = c.trusted === false;
    $("clock-banner").hidden = !untrusted;
    $("clock-banner").dataset.state = c.state || "";
  }

  function renderDecision(d) {
    const box = $("verdict");
    const v = d && VERDICTS.includes(d.verdict) ? d.verdict : "none";
    box.className = "verdict v-" + v;
    box.dataset.verdict = v;
    icon($("verdict-icon"), v);
    $("verdict-word").textContent = v === "none" ? ui("verdict_none") : verdictWord(v);
    $("override-tag").hidden = !(d && d.kind === "override");
    $("live-tag").hidden = !(d && (d.flags || []).includes("no_live_code"));
    if (!d) {
      $("attendant-msg").textContent = "";
      $("pilgrim-box").hidden = true;
      $("permit").hidden = true;
      $("headcount").hidden = true;
      $("would").hidden = true;
      $("history-box").hidden = true;
      return;
    }
    const c = codes(d.verdict, d.reason);
    const att = line(c.att, state.attLang, "attendant");
    const pil = line(c.pil, state.pilLang, "pilgrim");
    const am = $("attendant-msg");
    am.textContent = att.text;
    am.lang = att.lang;
    am.dir = att.dir;
    am.dataset.code = c.att;
    const pm = $("pilgrim-msg");
    pm.textContent = pil.text;
    pm.lang = pil.lang;
    pm.dir = pil.dir;
    pm.dataset.code = c.pil;
    $("pilgrim-box").hidden = false;
    $("pilgrim-box").dir = pil.dir;

    const p = d.permit;
    $("permit").hidden = !p;
    if (p) {
      setText("p-type", p.type);
      setText("p-slot", fmtSlot(p.slot_start, p.slot_end));
      setText("p-party", p.party);
      setText("p-initials", p.initials);
      setText("p-doc", p.doc_digits);
      $("p-route-row").hidden = !p.route;
      if (p.route) setText("p-route", p.route + (p.departure ? " · " + fmtTime(p.departure, true) : ""));
    }
    if (p) {
      setText("p-site", p.site);
      setText("p-groups", Array.isArray(p.gate_groups) ? p.gate_groups.join(", ") : null);
      setText("p-health", p.health);
      setText("p-issuer", p.issuer);
    }
    renderInspect(d);
    renderHeadcount(d);
  }

  // Counter mode: what an entrance would say, and what this gate already saw of the permit.
  function renderInspect(d) {
    const w = d.would;
    const wv = w && VERDICTS.includes(w.verdict) ? w.verdict : null;
    $("would").hidden = !wv;
    if (wv) {
      $("would").className = "panel w-" + wv;
      icon($("would-icon"), wv);
      $("would-word").textContent = verdictWord(wv);
      $("would-why").textContent = w.reason ? line(w.reason, state.attLang, "attendant").text : "";
    }
    const hist = Array.isArray(d.history) ? d.history : null;
    $("history-box").hidden = !hist;
    if (hist) {
      const ol = $("history");
      ol.replaceChildren();
      if (!hist.length) {
        const li = document.createElement("li");
        li.textContent = ui("none_yet");
        ol.appendChild(li);
      }
      for (const h of hist) {
        const li = document.createElement("li");
        const when = document.createElement("bdi");
        when.textContent = fmtTime(h.t, true);
        const v = VERDICTS.includes(h.verdict) ? verdictWord(h.verdict) : String(h.verdict);
        li.append(when, " · " + v + (h.party ? " ×" + h.party : "") +
          (h.reason ? " · " + line(h.reason, state.attLang, "attendant").text : ""));
        ol.appendChild(li);
      }
    }
  }

  function renderHeadcount(d) {
    const show = Boolean(d.awaiting_count) && (d.remaining || 0) > 0;
    $("headcount").hidden = !show;
    if (!show) return;
    if (state.hcFor !== d.id) {
      state.hcFor = d.id;
      state.hc = d.remaining;
    }
    state.hc = Math.min(Math.max(1, state.hc), d.remaining);
    $("hc-value").textContent = String(state.hc);
    $("hc-admit-n").textContent = String(state.hc);
    const party = d.permit ? d.permit.party : d.remaining;
    $("hc-remaining").textContent = d.remaining + "/" + party + " " + ui("remaining");
  }

  function renderCounters(c) {
    setText("c-gate", c.gate_admitted || 0);
    setText("c-slot", c.slot_admitted || 0);
    setText("c-denied", c.gate_denied || 0);
    $("c-slot-range").textContent = c.slot_start ? fmtSlot(c.slot_start, c.slot_end) : "";
    const cap = c.slot_capacity;
    $("cap-row").hidden = !cap;
    if (cap) {
      $("c-cap-bar").max = cap;
      $("c-cap-bar").value = Math.min(c.slot_admitted || 0, cap);
      $("c-cap").textContent = (c.slot_admitted || 0) + " / " + cap + " " + ui("capacity");
    }
  }

  function renderTrip(s) {
    const boarding = s.mode === "boarding";
    $("trip-panel").hidden = !boarding;
    if (!boarding) return;
    const t = s.trip;
    $("trip-open-view").hidden = !t;
    $("trip-form").hidden = Boolean(t);
    if (t) {
      const info = $("trip-info");
      info.replaceChildren();
      [[ui("bus"), t.bus], [ui("route"), t.route], ["", fmtTime(t.departure, true)]]
        .forEach(([label, value], i) => {
          if (i) info.append(" · ");
          if (label) info.append(label + " ");
          const iso = document.createElement("bdi");
          iso.textContent = value;
          info.appendChild(iso);
        });
      $("trip-bar").max = t.seats;
      $("trip-bar").value = Math.min(t.boarded, t.seats);
      $("trip-count").textContent = t.boarded + " / " + t.seats + " " + ui("boarded");
    }
    const list = $("closed-trips");
    list.replaceChildren();
    for (const tr of s.trips || []) {
      const li = document.createElement("li");
      const label = document.createElement("bdi");
      label.textContent = tr.bus + " · " + tr.route + " · " + fmtTime(tr.departure, true) + " · " +
        tr.boarded + "/" + tr.seats;
      const a = document.createElement("a");
      a.className = "btn manifest-link";
      a.href = "/api/trip/" + encodeURIComponent(tr.id) + "/manifest.csv";
      a.setAttribute("download", "manifest-" + tr.id + ".csv");
      a.textContent = ui("manifest");
      li.append(label, a);
      list.appendChild(li);
    }
  }

  function renderHealth(h, c) {
    setText("h-fps", typeof h.fps === "number" ? h.fps.toFixed(1) : null);
    setText("h-decode", typeof h.decode_ms === "number" ? h.decode_ms.toFixed(1) : null);
    const st = h.clock || c.state;
    setText("h-clock", st ? ui("clock_" + st) : null);
    $("h-clock").className = c.trusted === false ? "bad" : "";
    // null: the outbox could not be read. Never shown as 0 (operators check this figure
    // before they retire a ledger); the reason is in the element's title.
    const unknown = h.sync_backlog === null;
    let backlog = h.sync_backlog === undefined ? "–" : unknown ? ui("backlog_unknown")
      : String(h.sync_backlog);
    if (h.online === false) backlog += " · " + ui("offline");
    setText("h-backlog", backlog);
    $("h-backlog").className = h.online === false || unknown ? "bad" : "";
    $("h-backlog").title = unknown ? (h.sync_backlog_error || "") : "";
  }

  // The frame source's outage: "Camera disconnected — reconnecting (12 s)", counted on
  // between snapshots from the seconds the agent reported when it sent the snapshot.
  function sourceBannerText(src) {
    if (src.state === "failed") return ui("banner_source_failed");
    if (src.state === "finished") return ui("banner_source_finished");
    const scanner = typeof src.name === "string" && src.name.startsWith("wedge:");
    const key = scanner ? "banner_scanner_reconnecting" : "banner_camera_reconnecting";
    const since = typeof src.down_for_s === "number" ? src.down_for_s : src.last_frame_age_s;
    const secs = Math.max(0, Math.round((since || 0) + (Date.now() - state.sourceAt) / 1000));
    return ui(key).replace("{s}", String(secs));
  }
  function renderSource(src) {
    const banner = $("source-banner");
    const down = !!src && ["reconnecting", "failed", "finished"].includes(src.state);
    state.source = down ? src : null;
    state.sourceAt = Date.now();
    banner.hidden = !down;
    banner.dataset.state = down ? src.state : "";
    if (down) $("source-banner-text").textContent = sourceBannerText(src);
  }
  setInterval(() => {
    const src = state.source;
    if (src && src.state === "reconnecting") $("source-banner-text").textContent = sourceBannerText(src);
  }, 1000);

  function renderRecent(items) {
    const ol = $("recent");
    ol.replaceChildren();
    if (!items.length) {
      const li = document.createElement("li");
      li.textContent = ui("none_yet");
      ol.appendChild(li);
      return;
    }
    for (const it of items.slice(0, 20)) {
      const li = document.createElement("li");
      const v = VERDICTS.includes(it.verdict) ? it.verdict : "none";
      li.className = "v-" + v;
      const ic = document.createElement("span");
      ic.className = "icon";
      icon(ic, v);
      const t = document.createElement("bdi");
      t.textContent = fmtTime(it.t, false);
      const w = document.createElement("span");
      w.className = "r-word";
      w.textContent = v === "none" ? String(it.verdict) : verdictWord(v);
      const why = document.createElement("span");
      why.className = "r-why";
      // Each piece isolated: Latin initials must not be reordered inside an Arabic line.
      const bits = [];
      if (it.initials) bits.push(it.initials);
      if (it.party) bits.push("×" + it.party);
      if (it.reason) bits.push(line(it.reason, state.attLang, "attendant").text);
      else if (it.type) bits.push(it.type);
      bits.forEach((b, i) => {
        if (i) why.append(" · ");
        const iso = document.createElement("bdi");
        iso.textContent = b;
        why.appendChild(iso);
      });
      li.append(ic, t, w, why);
      ol.appendChild(li);
    }
  }

  // ---- actions -------------------------------------------------------------------------
  let toastTimer = null;
  function toast(text, isError) {
    const el = $("toast");
    el.textContent = text;
    el.className = isError ? "error" : "";
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.textContent = ""; }, isError ? 6000 : 2500);
  }

  async function post(path, body) {
    let r;
    try {
      r = await fetch(path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      return { ok: false, error: ui("disconnected") };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) return { ok: false, error: (data && data.error) || "HTTP " + r.status };
    return { ok: true, data };
  }

  async function refresh() {
    try {
      const r = await fetch("/api/snapshot");
      if (r.ok) render(await r.json());
    } catch (e) { /* the stream will bring it */ }
  }

  function buildReasons() {
    const box = $("ov-reasons");
    box.replaceChildren();
    for (const code of state.overrideReasons || []) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "btn reason";
      b.setAttribute("role", "radio");
      b.setAttribute("aria-checked", String(state.ov.reason === code));
      b.dataset.reason = code;
      b.textContent = line(code, state.attLang, "attendant").text;
      b.addEventListener("click", () => {
        state.ov.reason = code;
        for (const o of box.children) o.setAttribute("aria-checked", String(o.dataset.reason === code));
        $("ov-error").textContent = "";
      });
      box.appendChild(b);
    }
  }

  function setOvAction(action) {
    state.ov.action = action;
    $("ov-admit").setAttribute("aria-pressed", String(action === "admit"));
    $("ov-deny").setAttribute("aria-pressed", String(action === "deny"));
  }
  function setOvParty(n) {
    state.ov.party = Math.min(64, Math.max(1, n));
    $("ov-party").textContent = String(state.ov.party);
  }

  function openOverride() {
    state.ov.reason = null;
    setOvAction("admit");
    const d = state.snap && state.snap.last;
    setOvParty(d && d.permit ? d.permit.party : 1);
    $("ov-note").value = "";
    $("ov-error").textContent = "";
    buildReasons();
    $("override-dialog").showModal();
  }

  async function submitOverride() {
    const note = $("ov-note").value.trim();
    if (!state.ov.reason) { $("ov-error").textContent = ui("reason_required"); return; }
    if (state.ov.reason === "other" && note.length < 3) {
      $("ov-error").textContent = ui("note_required");
      return;
    }
    $("ov-submit").disabled = true;
    const res = await post("/api/override", {
      action: state.ov.action, reason: state.ov.reason, note, party: state.ov.party,
    });
    $("ov-submit").disabled = false;
    if (!res.ok) { $("ov-error").textContent = res.error; return; }
    $("override-dialog").close();
    toast(ui("done"));
    refresh();
  }

  async function submitClock() {
    const note = $("clock-note").value.trim();
    if (note.length < 5) { $("clock-error").textContent = ui("time_note"); return; }
    const res = await post("/api/time-override", { note });
    if (!res.ok) { $("clock-error").textContent = res.error; return; }
    $("clock-dialog").close();
    toast(ui("done"));
    refresh();
  }

  async function confirmParty() {
    const d = state.snap && state.snap.last;
    if (!d) return;
    $("hc-admit").disabled = true;
    const res = await post("/api/confirm-party", { decision_id: d.id, count: state.hc });
    $("hc-admit").disabled = false;
    if (!res.ok) toast(res.error, true);
    else { toast(ui("done")); refresh(); }
  }

  async function openTrip(ev) {
    ev.preventDefault();
    const dep = $("trip-departure").value;
    const departure = dep ? Math.floor(new Date(dep).getTime() / 1000) : NaN;
    const seats = Number.parseInt($("trip-seats").value, 10);
    const body = {
      bus: $("trip-bus").value.trim(), route: $("trip-route").value.trim(), departure, seats,
    };
    if (!body.bus || !body.route || !Number.isFinite(departure) || !Number.isFinite(seats)) {
      $("trip-error").textContent = ui("open_trip") + ": " + [ui("bus"), ui("route"), ui("departure"), ui("seats")].join(", ");
      return;
    }
    const res = await post("/api/trip/open", body);
    $("trip-error").textContent = res.ok ? "" : res.error;
    if (res.ok) { toast(ui("done")); refresh(); }
  }

  // Closing a trip cannot be undone: the first tap arms, the second (within 4 s) closes.
  async function closeTrip() {
    const btn = $("trip-close-btn");
    if (!state.closeArmed) {
      btn.classList.add("confirming");
      btn.textContent = ui("close_trip") + " ?";
      state.closeArmed = setTimeout(() => {
        state.closeArmed = null;
        btn.classList.remove("confirming");
        btn.textContent = ui("close_trip");
      }, 4000);
      return;
    }
    clearTimeout(state.closeArmed);
    state.closeArmed = null;
    btn.classList.remove("confirming");
    btn.textContent = ui("close_trip");
    const res = await post("/api/trip/close", {});
    $("trip-error").textContent = res.ok ? "" : res.error;
    if (res.ok) { toast(ui("done")); refresh(); }
  }

  async function sendScan(payload) {
    const res = await post("/api/scan", { payload });
    if (!res.ok) { toast(res.error, true); return false; }
    refresh();
    return true;
  }

  async function submitScan(ev) {
    ev.preventDefault();
    const payload = $("scan-input").value.trim();
    if (!payload) return;
    if (await sendScan(payload)) $("scan-input").value = "";
  }

  // A keyboard-wedge scanner "types" the whole code within milliseconds and ends with
  // Enter. When no text field has focus, such bursts are collected and submitted; slow
  // human key presses are not (and Enter on a focused button keeps working as usual).
  const WEDGE_GAP_MS = 100;
  const WEDGE_MIN = 6;
  const wedge = { buf: "", last: 0 };
  function onWedgeKey(ev) {
    const tag = ev.target && ev.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    if (document.querySelector("dialog[open]")) return;
    const now = performance.now();
    if (now - wedge.last > WEDGE_GAP_MS) wedge.buf = "";
    wedge.last = now;
    if (ev.key === "Enter") {
      const code = wedge.buf;
      wedge.buf = "";
      if (code.length >= WEDGE_MIN) {
        ev.preventDefault(); // the burst's Enter must not also press a focused button
        sendScan(code);
      }
      return;
    }
    if (ev.key.length === 1) wedge.buf += ev.key;
  }

  // ---- live updates ------------------------------------------------------------------
  function connect() {
    const es = new EventSource("/api/stream");
    // While the agent is unreachable the last verdict is history, not news: say so and dim it.
    const online = (up) => {
      $("conn").hidden = up;
      document.documentElement.classList.toggle("stale", !up);
    };
    es.addEventListener("snapshot", (e) => {
      online(true);
      render(JSON.parse(e.data));
    });
    es.onopen = () => online(true);
    es.onerror = () => online(false); // EventSource retries by itself
  }

  async function setPilgrimLang(lang) {
    try { await loadCat(lang); } catch (e) { toast(String(e), true); return; }
    state.pilLang = lang;
    localStorage.setItem("gp.pilLang", lang);
    $("pilgrim-lang").value = lang;
    if (state.snap) render(state.snap);
  }
  async function setConsoleLang(lang) {
    try { await loadCat(lang); } catch (e) { toast(String(e), true); return; }
    state.attLang = lang;
    localStorage.setItem("gp.attLang", lang);
    $("console-lang").value = lang;
    applyUi();
  }

  async function init() {
    await loadCat("en");
    const [langsR, snapR, metaR] = await Promise.all([
      fetch("/api/i18n"), fetch("/api/snapshot"), fetch("/api/console"),
    ]);
    state.langs = await langsR.json();
    const snap = await snapR.json();
    const meta = metaR.ok ? await metaR.json() : { override_reasons: [] };
    state.overrideReasons = meta.override_reasons;
    const defaults = snap.languages || {};
    const known = new Set(state.langs.map((l) => l.lang));
    if (!state.attLang || !known.has(state.attLang)) state.attLang = defaults.attendant || "en";
    if (!state.pilLang || !known.has(state.pilLang)) state.pilLang = defaults.pilgrim || "ar";
    // The console's own labels exist for a few languages only (see /api/i18n "console").
    if (!state.langs.some((l) => l.lang === state.attLang && l.console)) state.attLang = "en";
    if (!known.has(state.pilLang)) state.pilLang = "en";
    await Promise.all([loadCat(state.attLang), loadCat(state.pilLang)]);

    for (const l of state.langs) {
      const o = new Option(l.name, l.lang);
      $("pilgrim-lang").add(o);
      if (l.console) $("console-lang").add(new Option(l.name, l.lang));
    }
    $("pilgrim-lang").value = state.pilLang;
    $("console-lang").value = state.attLang;
    state.snap = snap;
    applyUi();
    connect();
  }

  function wire() {
    for (const el of document.querySelectorAll("[data-icon]")) icon(el, el.dataset.icon);
    $("pilgrim-lang").addEventListener("change", (e) => setPilgrimLang(e.target.value));
    $("console-lang").addEventListener("change", (e) => setConsoleLang(e.target.value));
    $("override-btn").addEventListener("click", openOverride);
    $("ov-admit").addEventListener("click", () => setOvAction("admit"));
    $("ov-deny").addEventListener("click", () => setOvAction("deny"));
    $("ov-minus").addEventListener("click", () => setOvParty(state.ov.party - 1));
    $("ov-plus").addEventListener("click", () => setOvParty(state.ov.party + 1));
    $("ov-cancel").addEventListener("click", () => $("override-dialog").close());
    $("ov-submit").addEventListener("click", submitOverride);
    $("trust-clock-btn").addEventListener("click", () => {
      $("clock-note").value = "";
      $("clock-error").textContent = "";
      const now = state.snap && state.snap.clock && state.snap.clock.now;
      $("clock-now").textContent = now ? new Date(now * 1000).toISOString() : "";
      $("clock-dialog").showModal();
    });
    $("clock-cancel").addEventListener("click", () => $("clock-dialog").close());
    $("clock-submit").addEventListener("click", submitClock);
    $("hc-minus").addEventListener("click", () => { state.hc -= 1; renderHeadcount(state.snap.last); });
    $("hc-plus").addEventListener("click", () => { state.hc += 1; renderHeadcount(state.snap.last); });
    $("hc-admit").addEventListener("click", confirmParty);
    $("trip-form").addEventListener("submit", openTrip);
    $("trip-close-btn").addEventListener("click", closeTrip);
    $("scan-form").addEventListener("submit", submitScan);
    document.addEventListener("keydown", onWedgeKey);
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire();
    init().catch((e) => toast(String(e), true));
  });
})();
