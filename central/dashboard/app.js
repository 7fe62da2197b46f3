// gatepass central dashboard: polls /api/summary and redraws. No external assets.
"use strict";
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const pollMs = Math.max(100, parseInt(document.body.dataset.pollMs || "1000", 10));

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function fmtTime(t) {
    if (t === null || t === undefined) return "–";
    const d = new Date(t * 1000);
    return d.toISOString().replace("T", " ").slice(0, 19) + "Z";
  }
  function fmtSlot(s) {
    if (s === null || s === undefined) return "no slot";
    return new Date(s * 1000).toISOString().slice(5, 16).replace("T", " ");
  }
  function num(n) { return n === null || n === undefined ? "–" : Number(n).toLocaleString("en"); }
  function fillRows(tableId, rows, cells, keyAttr) {
    const body = document.querySelector("#" + tableId + " tbody");
    body.replaceChildren();
    for (const r of rows) {
      const tr = el("tr", keyAttr ? { [keyAttr[0]]: r[keyAttr[1]] } : {});
      for (const [value, cls] of cells(r)) tr.appendChild(el("td", cls ? { class: cls } : {}, value));
      body.appendChild(tr);
    }
    if (!rows.length) {
      const tr = el("tr");
      tr.appendChild(el("td", { colspan: "9", class: "muted" }, "none"));
      body.appendChild(tr);
    }
  }

  function chart(site) {
    // One bar per slot: people admitted; dashed line: that slot's capacity.
    const slots = site.slots;
    const W = 360, H = 150, left = 34, bottom = 26, top = 8;
    const peak = Math.max(1, ...slots.map(s => Math.max(s.admitted, s.capacity || 0)));
    const g = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
                           "aria-label": `admissions per slot at ${site.site}` });
    const plotW = W - left - 4, plotH = H - bottom - top;
    g.appendChild(svg("line", { x1: left, y1: top + plotH, x2: W - 4, y2: top + plotH,
                                stroke: "#a0aec0" }));
    g.appendChild(svg("text", { x: 2, y: top + 8 }, num(peak)));
    g.appendChild(svg("text", { x: 2, y: top + plotH }, "0"));
    const n = Math.max(1, slots.length), step = plotW / n, bw = Math.max(4, step * 0.6);
    slots.forEach((s, i) => {
      const x = left + i * step + (step - bw) / 2;
      const h = plotH * s.admitted / peak;
      let cls = "bar";
      if (s.capacity) {
        if (s.admitted >= s.capacity) cls += " full";
        else if (s.admitted >= 0.9 * s.capacity) cls += " near";
      }
      const bar = svg("rect", { class: cls, x: x, y: top + plotH - h, width: bw, height: h,
                                "data-slot": s.slot === null ? "none" : s.slot,
                                "data-admitted": s.admitted });
      bar.appendChild(svg("title", {}, `${fmtSlot(s.slot)}: ${s.admitted} of ${s.capacity ?? "?"}`));
      g.appendChild(bar);
      if (s.capacity) {
        const y = top + plotH - plotH * s.capacity / peak;
        g.appendChild(svg("line", { class: "cap", x1: x - 2, x2: x + bw + 2, y1: y, y2: y }));
      }
      if (n <= 12 || i % Math.ceil(n / 12) === 0)
        g.appendChild(svg("text", { x: x, y: H - 10 }, fmtSlot(s.slot).slice(6)));
    });
    return g;
  }

  function renderSites(sites) {
    const box = document.getElementById("sites");
    box.replaceChildren();
    for (const s of sites) {
      const card = el("div", { class: "site", id: "site-" + s.site, "data-site": s.site });
      card.appendChild(el("h3", {}, s.name));
      const sum = el("div", { class: "sum" });
      sum.appendChild(document.createTextNode("admitted "));
      sum.appendChild(el("b", { "data-site-admitted": s.site }, s.admitted));
      const cap = s.capacity_per_slot === null ? "not configured" : num(s.capacity_per_slot);
      sum.appendChild(document.createTextNode(` · ${s.slots.length} slots · capacity per slot ${cap}`));
      card.appendChild(sum);
      card.appendChild(chart(s));
      const t = el("table", { class: "slots" });
      const head = el("tr");
      for (const h of ["slot", "admitted", "capacity", "use"]) head.appendChild(el("th", {}, h));
      t.appendChild(head);
      for (const sl of s.slots) {
        const tr = el("tr", { "data-slot-row": `${s.site}/${sl.slot}` });
        tr.appendChild(el("td", {}, fmtSlot(sl.slot)));
        tr.appendChild(el("td", { class: "num", "data-slot-admitted": `${s.site}/${sl.slot}` }, sl.admitted));
        tr.appendChild(el("td", { class: "num" }, num(sl.capacity)));
        tr.appendChild(el("td", { class: "num" },
          sl.capacity ? Math.round(100 * sl.admitted / sl.capacity) + "%" : "–"));
        t.appendChild(tr);
      }
      card.appendChild(t);
      box.appendChild(card);
    }
  }

  function render(d) {
    document.getElementById("total-admitted").textContent = d.totals.admitted;
    document.getElementById("total-events").textContent = d.totals.events;
    document.getElementById("total-conflicts").textContent = d.conflict_count;
    document.getElementById("total-anomalies").textContent = d.anomalies.count;
    const alarms = d.seq_alarms ? d.seq_alarms.open : 0;
    document.getElementById("seq-alarms").textContent = alarms;
    document.getElementById("seq-alarms-box").classList.toggle("alarm", alarms > 0);
    renderSites(d.sites);
    fillRows("gates", d.gates, g => [
      [g.gate], [g.site || "–"], [g.state, "state-" + g.state],
      [g.state === "offline" ? fmtTime(g.offline_since) : "–"],
      [num(g.backlog), "num"], [g.clock || "–"],
      [typeof g.last_verdict_t === "number" ? fmtTime(g.last_verdict_t) : "–"],
      [`${num(g.stored)} (${num(g.contiguous_seq)})`, "num"], [num(g.admitted), "num"],
    ], ["data-gate", "gate"]);
    fillRows("trips", d.trips, t => [
      [t.site], [t.trip], [t.gates.join(", ")], [num(t.admits), "num"], [num(t.admitted), "num"],
    ], ["data-trip", "trip"]);
    fillRows("types", d.types, t => [[t.site], [t.ptype || "–"], [num(t.admitted), "num"]]);
    fillRows("conflicts", d.conflicts, c => [
      [c.ph.slice(0, 12) + "…"], [c.site], [`${c.gate} #${c.seq}`], [fmtTime(c.t)],
      [`${c.standing_gate} #${c.standing_seq}`], [fmtTime(c.standing_t)],
    ], ["data-conflict", "ph"]);
    fillRows("documents", d.documents, x => [
      [x.kind], [x.version, "num"], [x.summary], [num(x.size), "num"], [fmtTime(x.received)],
    ]);
    document.getElementById("updated").textContent = "updated " + fmtTime(d.t);
  }

  let timer = null;
  async function poll() {
    try {
      const r = await fetch("/api/summary", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      render(await r.json());
    } catch (e) {
      document.getElementById("updated").textContent = "no answer from the centre (" + e.message + ")";
    } finally {
      timer = setTimeout(poll, pollMs);
    }
  }
  poll();
})();
