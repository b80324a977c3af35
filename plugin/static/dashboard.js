// callguard admin dashboard: plain DOM, no dependencies, no external fetches.
// Every value from the server is rendered with textContent / setAttribute, never parsed as HTML.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const CSRF = { "X-Callguard-Request": "1" };
  const LABELS = [["bonafide", "bona fide"], ["synthetic", "synthetic"], ["replay", "replay"], ["unsure", "unsure"]];
  const POLL_LIVE_MS = 1000;
  const POLL_REVIEW_MS = 10000;
  const POLL_MODELS_MS = 30000;
  const FEED_MAX = 200;

  const $ = (id) => document.getElementById(id);
  const state = { feedAfter: 0, reviewRows: new Map(), reviewFilter: "0" };

  // ------------------------------------------------------------------ small helpers
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function svg(tag, attrs, ...children) {
    const e = document.createElementNS(SVG_NS, tag);
    setAttrs(e, attrs);
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "class") e.setAttribute("class", String(v));
      else e.setAttribute(k, String(v));
    }
  }

  function num(x, digits = 3) {
    return x === null || x === undefined || !isFinite(x) ? "–" : Number(x).toFixed(digits);
  }

  function time(ts) {
    if (ts === null || ts === undefined) return "–";
    const d = new Date(Number(ts) * 1000);
    return isNaN(d.getTime()) ? "–" : d.toLocaleTimeString();
  }

  function dateTime(ts) {
    if (ts === null || ts === undefined) return "–";
    const d = typeof ts === "number" ? new Date(ts * 1000) : new Date(String(ts));
    return isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
  }

  function who(x) {
    const parts = [x.caller_number, x.caller_name].filter((p) => p);
    return parts.length ? parts.join(" ") : "unknown caller";
  }

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(path, options = {}) {
    const opts = { credentials: "same-origin", cache: "no-store", ...options };
    opts.headers = { ...CSRF, ...(options.headers || {}) };
    const r = await fetch(path, opts);
    if (r.status === 401) {
      window.location.assign("/dashboard/login");
      throw new HttpError(401, "session expired: log in again");
    }
    let body = null;
    try { body = await r.json(); } catch (e) { body = null; }
    if (!r.ok) throw new HttpError(r.status, (body && body.error) || `HTTP ${r.status}`);
    return body;
  }

  function setConn(ok, text) {
    const c = $("conn");
    c.dataset.state = ok ? "ok" : "error";
    c.textContent = text;
  }

  // ------------------------------------------------------------------ live calls
  const W = 640, H = 140, ML = 34, MR = 70, MT = 8, MB = 20;

  function timeline(leg) {
    const pts = leg.points || [];
    const x0 = pts.length ? Math.min(...pts.map((p) => p.start_s ?? p.end_s ?? 0)) : 0;
    const xEnd = pts.length ? Math.max(...pts.map((p) => p.end_s ?? p.start_s ?? 0)) : 0;
    const span = Math.max(xEnd - x0, 20);
    const X = (s) => ML + ((s - x0) / span) * (W - ML - MR);
    const Y = (v) => MT + (1 - Math.min(Math.max(v, 0), 1)) * (H - MT - MB);
    const g = svg("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none",
                           "data-timeline": leg.key, role: "img",
                           "aria-label": `score timeline of the ${leg.leg} leg` });
    g.append(svg("rect", { class: "frame", x: ML, y: MT, width: W - ML - MR, height: H - MT - MB }));
    for (const v of [0, 0.5, 1]) {
      g.append(svg("line", { class: "grid", x1: ML, x2: W - MR, y1: Y(v), y2: Y(v) }));
      g.append(svg("text", { class: "axis-label", x: ML - 4, y: Y(v) + 3, "text-anchor": "end", text: v.toFixed(1) }));
    }
    g.append(svg("text", { class: "axis-label", x: ML, y: H - 5, text: `${num(x0, 0)} s` }));
    g.append(svg("text", { class: "axis-label", x: W - MR, y: H - 5, "text-anchor": "end",
                           text: `${num(x0 + span, 0)} s` }));
    for (const [name, label] of [["warn", "warn"], ["hangup", "hang-up"]]) {
      const v = leg[name];
      if (v === null || v === undefined) continue;
      g.append(svg("line", { "data-threshold": name, "data-value": v, x1: ML, x2: W - MR, y1: Y(v), y2: Y(v) }));
      const dy = name === "hangup" ? -3 : 10;  // keep the two labels apart when the thresholds are close
      g.append(svg("text", { class: "threshold-label", "data-threshold": name, x: W - MR + 4, y: Y(v) + dy,
                             text: `${label} ${num(v, 2)}` }));
    }
    const ev = pts.filter((p) => p.evidence !== null && p.evidence !== undefined);
    if (ev.length) {
      g.append(svg("polyline", { class: "evidence",
                                 points: ev.map((p) => `${X(p.end_s ?? 0).toFixed(1)},${Y(p.evidence).toFixed(1)}`).join(" ") }));
    }
    for (const p of pts) {
      if (p.score === null || p.score === undefined) continue;
      const level = leg.hangup !== null && p.score >= leg.hangup ? "hangup"
        : leg.warn !== null && p.score >= leg.warn ? "warn" : "ok";
      const mid = ((p.start_s ?? 0) + (p.end_s ?? p.start_s ?? 0)) / 2;
      g.append(svg("circle", { class: "point", "data-chunk-index": p.chunk_index, "data-score": p.score,
                               "data-level": level, cx: X(mid).toFixed(1), cy: Y(p.score).toFixed(1), r: 3.5 },
                   svg("title", { text: `chunk ${p.chunk_index}: score ${num(p.score)}, evidence ${num(p.evidence)}` })));
    }
    return g;
  }

  function legCard(leg) {
    return el("div", { class: "leg", "data-leg": leg.key },
      el("div", { class: "leg-head" },
        el("span", { class: "who" }),
        el("span", { class: "legname" }),
        el("span", { class: "badge" }),
        el("span", { class: "evidence-now" }),
        el("span", { class: "policy muted" })),
      el("div", { class: "timeline-box" }),
      el("div", { class: "leg-foot" }));
  }

  function renderCalls(data) {
    const box = $("calls");
    const legs = data.legs || [];
    const seen = new Set();
    for (const leg of legs) {
      seen.add(leg.key);
      let card = box.querySelector(`div.leg[data-leg="${CSS.escape(leg.key)}"]`);
      if (!card) card = legCard(leg);
      box.append(card);  // keeps the server's order
      card.dataset.callId = leg.call_id;
      card.dataset.verdict = leg.verdict;
      card.querySelector(".who").textContent = who(leg);
      card.querySelector(".legname").textContent = `${leg.leg} leg · call ${leg.call_id}`;
      const badge = card.querySelector(".badge");
      badge.dataset.verdict = leg.verdict;
      badge.textContent = leg.verdict;
      card.querySelector(".evidence-now").textContent = `evidence ${num(leg.evidence)}`;
      card.querySelector(".policy").textContent = `policy ${leg.policy}`;
      card.querySelector(".timeline-box").replaceChildren(timeline(leg));
      card.querySelector(".leg-foot").textContent =
        `${leg.scored} chunk(s) scored` + (leg.errors ? `, ${leg.errors} error(s)` : "") +
        ` · rolling mean of ${leg.window} · tapped ${time(leg.tapped_at)}`;
    }
    for (const card of [...box.querySelectorAll("div.leg")]) if (!seen.has(card.dataset.leg)) card.remove();
    $("calls-empty").hidden = legs.length > 0;
    $("calls-count").textContent = legs.length ? `(${legs.length} leg${legs.length > 1 ? "s" : ""})` : "";
    const d = data.detector;
    $("detector").textContent = d ? `detector ${d.name} ${d.version} · warn ${num(d.warn)} · hang-up ${num(d.hangup)}`
      : "detector: not loaded";
  }

  // ------------------------------------------------------------------ feed
  function feedText(m) {
    const leg = `${m.leg} leg of ${who(m)} (call ${m.call_id})`;
    if (m.type === "summary") {
      const s = m.summary || {};
      return `${leg} ended (${s.ended_by || "?"}): final ${s.final_verdict || m.verdict}, max score ${num(s.max_score)}, ` +
        `${s.scored ?? "?"} chunk(s) scored`;
    }
    const actions = (m.actions || []).join(", ") || "none";
    return `${leg}: ${m.previous_verdict || "start"} → ${m.verdict} (evidence ${num(m.evidence ?? m.score)}; actions: ${actions})`;
  }

  function renderFeed(data) {
    const list = $("feed");
    if (data.last < state.feedAfter) { list.replaceChildren(); }  // the service restarted
    for (const m of data.messages || []) {
      const li = el("li", { "data-feed-seq": m.seq, "data-type": m.type, "data-verdict": m.verdict,
                            "data-call-id": m.call_id, "data-leg": m.leg },
        el("span", { class: "time", text: time(m.ts) }),
        el("span", { class: "badge", "data-verdict": m.verdict, text: m.type === "summary" ? `ended ${m.verdict}` : m.verdict }),
        " ",
        el("span", { class: "text", text: feedText(m) }));
      list.prepend(li);
    }
    while (list.children.length > FEED_MAX) list.lastElementChild.remove();
    state.feedAfter = data.last;
    $("feed-empty").hidden = list.children.length > 0;
  }

  async function pollLive() {
    try {
      const [calls, feed] = await Promise.all([api("/api/calls"), api(`/api/feed?after=${state.feedAfter}`)]);
      renderCalls(calls);
      renderFeed(feed);
      setConn(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (e) {
      setConn(false, `error: ${e.message}`);
    } finally {
      setTimeout(pollLive, POLL_LIVE_MS);
    }
  }

  // ------------------------------------------------------------------ review queue
  function reviewStatus(text, isError) {
    const s = $("review-status");
    s.textContent = text;
    s.dataset.state = isError ? "error" : "ok";
  }

  function labelText(item) {
    if (!item.label) return "unlabelled";
    return `${item.label} · ${item.labelled_by || "?"} · ${dateTime(item.labelled_at)}`;
  }

  function updateRow(row, item) {
    const cur = row.querySelector(".item-label");
    cur.dataset.currentLabel = item.label || "";
    cur.dataset.labelledBy = item.labelled_by || "";
    cur.textContent = labelText(item);
    row.dataset.label = item.label || "";
  }

  function reviewRow(item) {
    const audio = el("audio", { controls: "", preload: "none", src: item.audio_url, "data-audio-for": item.id });
    const note = el("input", { class: "note", type: "text", maxlength: 500, placeholder: "note (optional)",
                               "aria-label": `note for item ${item.id}` });
    const buttons = el("div", { class: "label-buttons" });
    for (const [value, text] of LABELS) {
      const b = el("button", { type: "button", "data-label": value, "data-item-id": item.id, text });
      b.addEventListener("click", () => label(item.id, value, row, buttons, note));
      buttons.append(b);
    }
    const row = el("tr", { "data-item-id": item.id },
      el("td", { text: item.id }),
      el("td", { text: dateTime(item.created_at) }),
      el("td", {},
        el("div", { text: who(item) }),
        el("div", { class: "small", text: `${item.leg || "?"} leg · call ${item.call_id} · chunk ${item.chunk_index ?? "?"} ` +
                                          `@ ${num(item.chunk_start_s, 1)} s · policy ${item.policy || "?"}` })),
      el("td", {},
        el("div", { text: num(item.score) }),
        el("div", { class: "small", text: `evidence ${num(item.evidence)}` })),
      el("td", {},
        el("span", { class: "badge", "data-verdict": item.verdict, text: item.verdict || "?" }),
        el("div", { class: "small", text: `${item.reason || ""} · ${item.detector_version || ""}` })),
      el("td", {}, audio),
      el("td", {}, el("div", { class: "item-label", "data-current-label": "" }), buttons, note));
    updateRow(row, item);
    return row;
  }

  async function label(id, value, row, buttons, note) {
    const reviewer = $("reviewer").value.trim();
    if (!reviewer) {
      reviewStatus("Enter your name (top right) before labelling.", true);
      $("reviewer").focus();
      return;
    }
    for (const b of buttons.querySelectorAll("button")) b.disabled = true;
    try {
      const item = await api(`/api/review/${encodeURIComponent(id)}/label`, {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ label: value, reviewer, note: note.value }) });
      updateRow(row, item);
      row.classList.add("just-labelled");
      note.value = "";
      reviewStatus(`item ${item.id} labelled ${item.label} by ${item.labelled_by}`, false);
      loadCounts();
    } catch (e) {
      reviewStatus(`item ${id}: ${e.message}`, true);
    } finally {
      for (const b of buttons.querySelectorAll("button")) b.disabled = false;
    }
  }

  function renderCounts(data) {
    const c = data.counts || {};
    const parts = [`${c.total || 0} item(s)`, `${c.unlabelled || 0} unlabelled`];
    for (const [value, text] of LABELS) if (c[value]) parts.push(`${c[value]} ${text}`);
    $("review-counts").textContent = `(${parts.join(", ")})`;
  }

  async function loadCounts() {
    try { renderCounts(await api("/api/review?labelled=all&limit=1")); } catch (e) { /* shown by the next load */ }
  }

  // replace: rebuild the table (filter change, Refresh). Otherwise (timer) add new items on top and update the
  // labels of the rows shown, without touching rows being listened to.
  async function loadReview(replace) {
    try {
      const data = await api(`/api/review?labelled=${encodeURIComponent(state.reviewFilter)}&limit=100`);
      const body = $("review-items");
      if (replace) { body.replaceChildren(); state.reviewRows.clear(); }
      const fresh = [];
      for (const item of data.items || []) {
        const row = state.reviewRows.get(item.id);
        if (row) updateRow(row, item);
        else fresh.push(item);
      }
      const rows = fresh.map((item) => { const r = reviewRow(item); state.reviewRows.set(item.id, r); return r; });
      if (replace) body.append(...rows); else body.prepend(...rows);
      renderCounts(data);
      $("review-empty").textContent = data.available ? (body.children.length ? "" : "Nothing to review.")
        : (data.reason || "No review store.");
      $("review").hidden = body.children.length === 0;
      if (replace) reviewStatus("", false);
    } catch (e) {
      reviewStatus(`review queue: ${e.message}`, true);
    }
  }

  // ------------------------------------------------------------------ models
  function flatten(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      const key = prefix ? `${prefix}.${k}` : k;
      if (typeof v === "number") out.push([key, v]);
      else if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    }
    return out;
  }

  function metricsText(metrics) {
    return flatten(metrics, "", []).filter(([k]) => !k.endsWith(".n") && !k.endsWith("n_spoof"))
      .map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(" · ");
  }

  function renderModels(data) {
    const sum = $("models-summary");
    const lines = [];
    const r = data.running;
    lines.push(r ? `Running: ${r.name} ${r.version} (warn ${num(r.warn)}, hang-up ${num(r.hangup)}, EER ${num(r.eer)})`
      : "Running: no detector loaded");
    lines.push(`Installed version: ${data.current || "none (models directory not versioned yet)"}`);
    const inst = data.installed;
    if (inst) {
      const th = inst.thresholds || {};
      lines.push(`Installed GBM model ${inst.version || "?"}: dev EER ${num(inst.dev && inst.dev.eer)}, ` +
                 `thresholds eer ${num(th.eer)} / warn ${num(th.far_1pct)} / hang-up ${num(th.far_0_1pct)}`);
    }
    sum.replaceChildren(...lines.map((t) => el("p", { text: t })));
    const body = $("model-versions-body");
    body.replaceChildren(...(data.versions || []).map((v) => el("tr", { "data-version": v.name, "data-current": v.current ? "true" : "false" },
      el("td", { text: v.current ? `${v.name} (installed)` : v.name }),
      el("td", { text: dateTime(v.created) }),
      el("td", { text: [v.source, v.parent ? `from ${v.parent}` : "", v.model_version || ""].filter((x) => x).join(" · ") }),
      el("td", { text: v.decision || "" }),
      el("td", { class: "metrics", text: metricsText(v.metrics) }))));
    $("model-versions").hidden = body.children.length === 0;
    const log = $("model-log");
    log.replaceChildren(...(data.log || []).map((e) => el("li", { "data-event": e.event },
      el("span", { class: "time", text: dateTime(e.ts) }), " ",
      el("strong", { text: e.event || "?" }), " ",
      el("span", { text: [e.challenger ? `challenger ${e.challenger}` : "", e.champion ? `champion ${e.champion}` : "",
                          e.from ? `from ${e.from}` : "", e.to ? `to ${e.to}` : "",
                          (e.reasons || []).join("; "), e.reason || ""].filter((x) => x).join(" · ") }),
      e.metrics ? el("div", { class: "metrics", text: metricsText(e.metrics) }) : null)));
    $("model-log-empty").hidden = log.children.length > 0;
  }

  async function pollModels() {
    try { renderModels(await api("/api/models")); } catch (e) { /* retried on the next poll */ }
    setTimeout(pollModels, POLL_MODELS_MS);
  }

  // ------------------------------------------------------------------ start
  async function start() {
    try {
      const s = await api("/api/session");
      if (s.reviewer) $("reviewer").value = s.reviewer;
    } catch (e) { /* a bearer-token client has no session: the name is typed in */ }
    $("review-filter").addEventListener("change", (ev) => { state.reviewFilter = ev.target.value; loadReview(true); });
    $("review-refresh").addEventListener("click", () => loadReview(true));
    $("logout").addEventListener("click", async () => {
      try { await api("/dashboard/logout", { method: "POST" }); } catch (e) { /* going anyway */ }
      window.location.assign("/dashboard/login");
    });
    pollLive();
    await loadReview(true);
    setInterval(() => loadReview(false), POLL_REVIEW_MS);
    pollModels();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
