// airlock console: polls the JSON API and renders with textContent only
// (request data comes from agents and is never parsed as HTML).
"use strict";
(function () {
  let csrf = "";
  let usageWindow = "hour";
  let lastUsage = null;
  let lastFeedTop = "";
  let signedIn = false;
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function api(path, opts) {
    opts = opts || {};
    const headers = { "Accept": "application/json" };
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      headers["X-Airlock-CSRF"] = csrf;
    }
    const resp = await fetch(path, {
      method: opts.method || "GET", headers, credentials: "same-origin",
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    if (resp.status === 401) { signOut(); throw new Error("signed out"); }
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error((data.detail || resp.statusText) + (data.suggestion ? " — " + data.suggestion : ""));
    return data;
  }

  function signOut() {
    signedIn = false;
    $("main").hidden = true; $("logout").hidden = true; $("signedout").hidden = false;
    $("status").textContent = "signed out";
  }

  function status(text) { $("status").textContent = text; }

  function age(s) {
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return Math.round(s / 60) + " min";
    return Math.round(s / 3600) + " h";
  }

  async function decide(id, verdict, body, buttons) {
    buttons.forEach((b) => { b.disabled = true; });
    try {
      await api("/ui/api/approvals/" + encodeURIComponent(id) + "/" + verdict, { method: "POST", body });
      status(verdict === "approve" ? "approved " + id : "denied " + id);
    } catch (e) {
      status("failed: " + e.message);
      buttons.forEach((b) => { b.disabled = false; });
    }
    refreshPending();
  }

  function pendingItem(p) {
    const li = el("li", { "data-id": p.id });
    const what = el("div", { class: "what" });
    what.appendChild(el("div", { class: "req" }, p.method + " " + p.host + p.path));
    const target = p.unmatched ? "no rule matched" : "rule " + p.rule;
    what.appendChild(el("div", { class: "meta" },
      "agent " + p.agent + " · " + target + " · waiting " + age(p.age_seconds) +
      " · " + p.waiters + (p.waiters === 1 ? " request" : " requests") + " · " + p.id));
    li.appendChild(what);
    const actions = el("div", { class: "actions" });
    const reason = el("input", { class: "reason", placeholder: "reason (deny)", "aria-label": "reason", maxlength: "200" });
    const buttons = [];
    const add = (label, cls, verdict, remember) => {
      const b = el("button", { type: "button", class: cls, "data-id": p.id, "data-verdict": verdict, "data-remember": remember || "" }, label);
      b.addEventListener("click", () => decide(p.id, verdict,
        verdict === "approve" ? { remember } : { reason: reason.value }, buttons));
      buttons.push(b);
      actions.appendChild(b);
    };
    add("Approve once", "approve primary", "approve", "once");
    add("Approve 1 h", "approve", "approve", "1h");
    add("Approve always", "approve", "approve", "always");
    actions.appendChild(reason);
    add("Deny", "deny", "deny", "");
    li.appendChild(actions);
    return li;
  }

  async function refreshPending() {
    const data = await api("/ui/api/pending");
    const list = $("pending");
    const ids = new Set(data.pending.map((p) => p.id));
    for (const li of Array.from(list.children)) {
      if (!ids.has(li.getAttribute("data-id"))) li.remove();
    }
    const have = new Map(Array.from(list.children).map((li) => [li.getAttribute("data-id"), li]));
    for (const p of data.pending) {
      const fresh = pendingItem(p);
      const old = have.get(p.id);
      if (old) { // keep the buttons (and a reason being typed); update the text
        old.querySelector(".meta").textContent = fresh.querySelector(".meta").textContent;
      } else {
        list.appendChild(fresh);
      }
    }
    $("pending-count").textContent = String(data.pending.length);
    $("pending-empty").hidden = data.pending.length > 0;
    document.title = (data.pending.length ? "(" + data.pending.length + ") " : "") + "airlock console";
  }

  async function refreshFeed() {
    const sel = $("agent-filter");
    const data = await api("/ui/api/feed?agent=" + encodeURIComponent(sel.value));
    const known = new Set(Array.from(sel.options).map((o) => o.value));
    for (const a of data.agents || []) if (!known.has(a)) sel.appendChild(el("option", { value: a }, a));
    const body = $("feed").querySelector("tbody");
    body.replaceChildren();
    for (const e of data.events) {
      const tr = el("tr");
      const t = new Date(e.time);
      const cells = [t.toLocaleTimeString(), e.agent, e.method, e.host, e.path, e.rule || "", e.decision, String(e.status || ""), String(Math.round(e.duration_ms || 0))];
      cells.forEach((c, i) => {
        const td = el("td", i === 4 ? { class: "path", title: c } : i === 6 ? { class: "d-" + c } : {}, c);
        tr.appendChild(td);
      });
      body.appendChild(tr);
    }
    $("feed-empty").hidden = data.events.length > 0;
    const top = data.events.length ? data.events[0].time + " " + data.events.length : "";
    const changed = top !== lastFeedTop;
    lastFeedTop = top;
    return changed;
  }

  const SVGNS = "http://www.w3.org/2000/svg";
  function chart(series) {
    const row = el("div", { class: "chart" });
    row.appendChild(el("span", { class: "name", title: series.name }, series.name));
    const svg = document.createElementNS(SVGNS, "svg");
    const n = series.counts.length;
    svg.setAttribute("viewBox", "0 0 " + n + " 20");
    svg.setAttribute("preserveAspectRatio", "none");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", series.name + ": " + series.total);
    const max = Math.max(1, ...series.counts);
    series.counts.forEach((c, i) => {
      if (!c) return;
      const h = Math.max(1, (c / max) * 20);
      const r = document.createElementNS(SVGNS, "rect");
      r.setAttribute("x", String(i + 0.1)); r.setAttribute("width", "0.8");
      r.setAttribute("y", String(20 - h)); r.setAttribute("height", String(h));
      r.setAttribute("fill", "#2f5bd3");
      svg.appendChild(r);
    });
    row.appendChild(svg);
    row.appendChild(el("span", { class: "total" }, String(series.total)));
    return row;
  }

  function renderUsage() {
    if (!lastUsage) return;
    const w = lastUsage[usageWindow] || {};
    for (const [id, list] of [["usage-agents", w.agents], ["usage-credentials", w.credentials]]) {
      const box = $(id);
      box.replaceChildren();
      if (!list || !list.length) box.appendChild(el("p", { class: "empty" }, "No use in the last " + usageWindow + "."));
      for (const s of list || []) box.appendChild(chart(s));
    }
  }

  async function refreshUsage() {
    lastUsage = await api("/ui/api/usage");
    renderUsage();
  }

  async function refreshBudgets() {
    const data = await api("/ui/api/budgets");
    const box = $("budgets");
    box.replaceChildren();
    for (const b of data.budgets) {
      const frac = b.limit > 0 ? b.used / b.limit : 0;
      const bar = el("div", { class: "bar" });
      const label = el("div", { class: "label" });
      const fmt = (v) => b.unit === "usd" ? "$" + v.toFixed(2) : Math.round(v).toLocaleString() + " tokens";
      label.appendChild(el("span", {}, b.name));
      label.appendChild(el("span", {}, fmt(b.used) + " of " + fmt(b.limit) + (b.resets ? " · resets " + new Date(b.resets).toLocaleString() : "")));
      const track = el("div", { class: "track" });
      const fill = el("div", { class: "fill" + (frac >= 1 ? " over" : b.warn_at && frac >= b.warn_at ? " warn" : "") });
      fill.style.width = Math.min(100, frac * 100).toFixed(1) + "%";
      track.appendChild(fill);
      bar.appendChild(label); bar.appendChild(track);
      box.appendChild(bar);
    }
    $("budgets-empty").hidden = data.budgets.length > 0;
  }

  async function tick(n) {
    try {
      await refreshPending();
      // New decisions change the charts and the bars: read them at once
      // rather than at the next 5-second refresh.
      const fresh = await refreshFeed();
      if (fresh || n % 5 === 0) { await refreshUsage(); await refreshBudgets(); }
      status("live · updated " + new Date().toLocaleTimeString());
    } catch (e) {
      if (signedIn) status("update failed: " + e.message);
    }
  }

  async function start() {
    try {
      const s = await api("/ui/api/session");
      csrf = s.csrf || "";
      signedIn = true;
      $("main").hidden = false; $("logout").hidden = false; $("signedout").hidden = true;
    } catch (e) {
      signOut();
      return;
    }
    $("agent-filter").addEventListener("change", () => refreshFeed().catch(() => {}));
    for (const b of document.querySelectorAll(".tab")) {
      b.addEventListener("click", () => {
        usageWindow = b.getAttribute("data-window");
        for (const o of document.querySelectorAll(".tab")) o.classList.toggle("on", o === b);
        renderUsage();
      });
    }
    $("logout").addEventListener("click", async () => {
      try { await api("/ui/logout", { method: "POST", body: {} }); } catch (e) { /* signed out anyway */ }
      signOut();
    });
    let n = 0;
    const loop = async () => { if (!signedIn) return; await tick(n++); setTimeout(loop, 1000); };
    loop();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
