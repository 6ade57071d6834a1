// beach-manager console: renders the manager's live feed (GET stream, server-sent events).
// Plain script, no build step, no dependency; every server string is set as text, never HTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  let view = null;      // the latest `view` frame's data
  let viewAt = 0;       // its server time (ms): ages are measured against it, not our clock
  let detail = null;    // the latest `host` frame's data (for the selected host)
  let detailAt = 0;
  let selected = null;  // the host shown in detail (from the location hash)
  let source = null;
  let retry = null;
  const hostRows = new Map();  // host id -> <tr>, kept across updates (focus stays put)

  // -- small helpers ---------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return node;
  }
  function setText(node, text) { if (node.textContent !== text) node.textContent = text; }
  function age(ms, now) {
    if (ms === null || ms === undefined) return "";
    const s = Math.max(0, (now - ms) / 1000);
    if (s < 1) return "just now";
    if (s < 90) return Math.round(s) + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    return Math.round(s / 3600) + " h ago";
  }
  function clock(ms) { return ms ? new Date(ms).toISOString().slice(11, 19) : ""; }
  function short(id) { return id && id.length > 13 ? id.slice(0, 8) + "\u2026" + id.slice(-4) : (id || ""); }
  function badge(status, prefix) {
    return el("span", {class: "badge " + (prefix || "s-") + status}, status);
  }
  function fill(list, items, render, empty) {
    list.replaceChildren(...(items.length ? items.map(render) : [el("li", {class: "muted"}, empty)]));
  }

  // -- the stream ----------------------------------------------------------------------------
  function setConn(state, text) {
    const c = $("conn");
    c.dataset.state = state;
    setText(c, text || state);
  }
  function connect() {
    if (source) source.close();
    clearTimeout(retry);
    const url = "stream" + (selected ? "?host=" + encodeURIComponent(selected) : "");
    const es = new EventSource(url);
    source = es;
    setConn("connecting", "connecting\u2026");
    es.onopen = () => setConn("live", "live");
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {  // refused (auth, busy): try again later
        setConn("closed", "disconnected; retrying in 5 s");
        retry = setTimeout(connect, 5000);
      } else {
        setConn("reconnecting", "reconnecting\u2026");
      }
    };
    es.addEventListener("view", (e) => {
      const msg = JSON.parse(e.data);
      view = msg.data; viewAt = msg.at_ms;
      renderView();
    });
    es.addEventListener("host", (e) => {
      const msg = JSON.parse(e.data);
      if (msg.data.host_session_id !== selected) return;
      detail = msg.data; detailAt = msg.at_ms;
      renderDetail();
    });
  }

  // -- the view ------------------------------------------------------------------------------
  function renderView() {
    const inst = view.instance;
    setText($("instance-id"), inst.id);
    const stores = Object.entries(inst.stores || {}).map(([k, v]) => k + " " + v).join(", ");
    setText($("instance-meta"), [inst.state || "", inst.impl + " " + inst.version,
      "capacity " + inst.capacity, "stores: " + stores,
      "updated " + clock(viewAt)].filter(Boolean).join(" \u00b7 "));
    const err = $("cluster-error");
    err.hidden = !view.cluster_error;
    setText(err, view.cluster_error ? "Assignment store: " + view.cluster_error : "");
    renderMembers();
    renderHosts();
    renderActivity();
  }

  function renderMembers() {
    const body = $("members").tBodies[0];
    const members = view.members || [];
    body.replaceChildren(...members.map((m) => el("tr", {"data-member": m.id, class: m.id === view.this_instance ? "mine" : null},
      el("td", {class: "mono"}, m.id + (m.id === view.this_instance ? " (this one)" : "")),
      el("td", {}, m.state),
      el("td", {}, el("span", {class: "badge " + (m.live ? "p-ok" : "p-failed")}, m.live ? "live" : "dead")),
      el("td", {class: "num"}, m.load + " / " + m.capacity),
      el("td", {}, m.heartbeat_age_ms === null ? "" : (m.heartbeat_age_ms / 1000).toFixed(1) + " s ago"),
      el("td", {class: "mono"}, m.endpoint || ""))));
    if (!members.length) body.append(el("tr", {}, el("td", {colspan: "6", class: "muted"}, "no members listed")));
  }

  function hostStatus(h) {
    if (h.here) return h.status;
    return "elsewhere";
  }
  function matches(h, terms, status) {
    if (status && hostStatus(h) !== status) return false;
    const hay = [h.host_session_id, h.owner, h.standby, h.status, h.phase, h.role]
      .filter(Boolean).join(" ").toLowerCase();
    return terms.every((t) => hay.includes(t));
  }
  function ackText(a) {
    if (!a) return "";
    return a.status + " \u00b7 " + a.latency_ms + " ms \u00b7 " + age(a.at_ms, viewAt);
  }
  function hostCells(h) {
    const s = hostStatus(h);
    const status = el("span", {}, badge(s));
    if (h.here && h.role && h.role !== "active") status.append(el("span", {class: "role"}, h.role));
    if (!h.here && h.assigned_ready !== undefined && h.assigned_ready !== null) {
      status.append(el("span", {class: "role"}, h.assigned_ready ? "ready at its owner" : "not ready at its owner"));
    }
    const err = h.last_error && h.status !== "ready" ? " (" + h.last_error.phase + ": " + h.last_error.reason + ")" : "";
    return {
      "c-host": el("a", {href: "#host=" + encodeURIComponent(h.host_session_id), title: h.host_session_id}, h.host_session_id),
      "c-owner": h.owner || "",
      "c-standby": h.standby || "",
      "c-status": status,
      "c-phase": (h.phase || "") + err,
      "c-rtc": h.rtc_ready_seconds === null || h.rtc_ready_seconds === undefined ? "" : h.rtc_ready_seconds.toFixed(2) + " s",
      "c-reconnects": h.reconnects === undefined || h.reconnects === null ? "" : String(h.reconnects),
      "c-queue": h.queue_depth === undefined || h.queue_depth === null ? "" : String(h.queue_depth),
      "c-ack": ackText(h.last_ack),
      "c-epoch": h.epoch === null || h.epoch === undefined ? "" : String(h.epoch),
    };
  }
  const NUMERIC = new Set(["c-rtc", "c-reconnects", "c-queue", "c-epoch"]);

  function renderHosts() {
    const body = $("host-table").tBodies[0];
    const terms = $("filter").value.toLowerCase().split(/\s+/).filter(Boolean);
    const status = $("status-filter").value;
    const shown = (view.hosts || []).filter((h) => matches(h, terms, status));
    const keep = new Set(shown.map((h) => h.host_session_id));
    for (const [id, tr] of hostRows) if (!keep.has(id)) { tr.remove(); hostRows.delete(id); }
    let previous = null;
    for (const h of shown) {
      let tr = hostRows.get(h.host_session_id);
      if (!tr) {
        tr = el("tr", {"data-host": h.host_session_id});
        hostRows.set(h.host_session_id, tr);
      }
      updateRow(tr, h);
      const want = previous ? previous.nextSibling : body.firstChild;
      if (want !== tr) body.insertBefore(tr, want);  // (only moves rows out of place)
      previous = tr;
    }
    $("hosts-empty").hidden = shown.length > 0;
    const total = view.hosts_total || 0;
    setText($("host-count"), "(" + shown.length + " shown of " + total + (view.truncated ? ", list truncated" : "") + ")");
  }

  function updateRow(tr, h) {
    tr.dataset.status = hostStatus(h);
    tr.className = h.owner && h.owner === view.this_instance ? "mine" : "";
    if (h.host_session_id === selected) tr.setAttribute("aria-current", "true");
    else tr.removeAttribute("aria-current");
    const cells = hostCells(h);
    for (const [cls, value] of Object.entries(cells)) {
      let td = tr.querySelector("td." + cls);
      if (!td) { td = el("td", {class: cls + (NUMERIC.has(cls) ? " num" : "")}); tr.append(td); }
      if (value instanceof Node) {
        // replace only when the content changed, so a focused link keeps its focus
        if (td.firstChild === null || !td.firstChild.isEqualNode(value)) td.replaceChildren(value);
      } else {
        setText(td, value);
      }
    }
  }

  function renderActivity() {
    fill($("moves"), view.moves || [], (m) => el("li", {},
      clock(m.at_ms) + " " + short(m.host_session_id) + " \u2192 " + (m.manager_instance_id || "(released)")
      + (m.reassigned_from ? " from " + m.reassigned_from : "") + " (" + m.reason + ")"), "no moves yet");
    fill($("failovers"), view.failovers || [], (f) => el("li", {},
      short(f.host_session_id) + ": " + (f.from || "?") + " \u2192 " + f.to + " (" + f.how + ", " + f.detection_signal
      + ", epoch " + f.epoch + ")"), "no failovers");
    fill($("changes"), view.changes || [], (c) => el("li", {"data-host": c.host_session_id},
      clock(c.at_ms) + " " + short(c.host_session_id) + " " + (c.old || "new") + " \u2192 " + c.new
      + (c.role !== "active" ? " (" + c.role + ")" : "") + (c.reason ? " \u2014 " + c.reason : "")
      + (c.removed ? " (no longer managed here)" : "")), "no changes yet");
    fill($("refusals"), Object.entries(view.refusals || {}), ([what, n]) => el("li", {}, what + ": " + n),
      "none");
  }

  // -- one host ------------------------------------------------------------------------------
  function renderDetail() {
    const section = $("detail");
    section.hidden = !selected;
    if (!selected) return;
    setText($("detail-id"), selected);
    const msg = $("detail-message");
    const facts = $("detail-facts");
    if (!detail) {
      msg.hidden = false; setText(msg, "loading\u2026");
      return;
    }
    msg.hidden = detail.here;
    setText(msg, detail.here ? "" : detail.message);
    const owner = !detail.here && view && (view.members || []).find((m) => m.id === detail.owner && m.live);
    $("detail-elsewhere").hidden = !(owner && owner.endpoint);
    if (owner && owner.endpoint) {
      $("detail-owner-link").href = owner.endpoint + "/ui/#host=" + encodeURIComponent(selected);
    }
    const d = detail;
    const items = d.here ? [
      ["Status", d.status + (d.role !== "active" ? " (" + d.role + ")" : "")],
      ["Phase", d.phase || ""],
      ["Owner", d.owner || ""],
      ["Attempts / reconnects", d.attempts + " / " + d.reconnects],
      ["Ready since", d.ready_since_ms ? clock(d.ready_since_ms) + " (" + age(d.ready_since_ms, detailAt) + ")" : "not ready"],
      ["Transport", d.transport_id || ""],
      ["Peer session", d.peer_session_id || ""],
      ["ICE pair", d.ice_pair ? d.ice_pair.local + " \u2194 " + d.ice_pair.remote : ""],
      ["Last error", d.last_error ? d.last_error.phase + ": " + d.last_error.reason : "none"],
    ] : [["Owner", d.owner || "unknown"]];
    facts.replaceChildren(...items.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    renderTimeline(d.timeline || []);
    renderTerminal(d.terminal);
  }

  const KNOWN = new Set(["at", "attempt", "phase", "status", "transport_id"]);
  function renderTimeline(timeline) {
    const body = $("timeline").tBodies[0];
    const t0 = timeline.length ? timeline[0].at : 0;
    body.replaceChildren(...timeline.map((e) => el("tr", {},
      el("td", {class: "num"}, "+" + ((e.at - t0) * 1000).toFixed(0) + " ms"),
      el("td", {class: "num"}, e.attempt),
      el("td", {}, e.phase),
      el("td", {}, badge(e.status, "p-")),
      el("td", {class: "mono"}, Object.entries(e).filter(([k]) => !KNOWN.has(k))
        .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ")))));
    // the latest attempt, one chip per phase with how long it took
    const last = timeline.length ? timeline[timeline.length - 1].attempt : null;
    const phases = [];
    for (const e of timeline.filter((x) => x.attempt === last)) {
      let p = phases.find((x) => x.phase === e.phase);
      if (!p) { p = {phase: e.phase, start: e.at, end: e.at, status: e.status}; phases.push(p); }
      p.end = e.at; p.status = e.status;
    }
    fill($("phase-strip"), phases, (p) => el("li", {class: "p-" + p.status},
      p.phase + " " + (p.status === "pending" ? "\u2026" : ((p.end - p.start) * 1000).toFixed(0) + " ms")),
      "no attempt yet");
  }

  function renderTerminal(term) {
    const pre = $("terminal");
    if (!term) { pre.replaceChildren("(no mirror)"); return; }
    const rows = term.rows.slice();
    const cur = term.cursor;
    const keep = cur ? cur.line + 1 : 0;  // blank rows below the cursor are not shown
    while (rows.length > keep && rows[rows.length - 1] === "") rows.pop();
    const parts = [];
    rows.forEach((line, i) => {
      if (i) parts.push("\n");
      if (cur && cur.line === i) {
        const padded = line.padEnd(cur.col + 1, " ");
        parts.push(padded.slice(0, cur.col), el("span", {class: "cursor"}, padded[cur.col]), padded.slice(cur.col + 1));
      } else {
        parts.push(line);
      }
    });
    pre.dataset.version = term.version;
    pre.replaceChildren(...parts);
  }

  // -- navigation and keys ---------------------------------------------------------------------
  function hostFromHash() {
    const m = location.hash.match(/^#host=(.+)$/);
    return m ? decodeURIComponent(m[1]) : null;
  }
  function select(host, focus) {
    if (host === selected) return;
    selected = host;
    detail = null;
    renderDetail();
    if (view) renderHosts();
    connect();
    if (focus) (selected ? $("detail") : $("hosts")).focus();
  }
  window.addEventListener("hashchange", () => select(hostFromHash(), true));
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement;
    if (e.key === "/" && !typing) { e.preventDefault(); $("filter").focus(); }
    if (e.key === "Escape" && selected) {
      if (typing) e.target.blur();
      history.pushState(null, "", location.pathname + location.search);
      select(null, true);
    }
  });
  $("detail-close").addEventListener("click", (e) => {
    e.preventDefault();
    history.pushState(null, "", location.pathname + location.search);
    select(null, true);
  });
  for (const id of ["filter", "status-filter"]) $(id).addEventListener("input", () => { if (view) renderHosts(); });

  selected = hostFromHash();
  renderDetail();
  connect();
})();
