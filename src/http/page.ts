/**
 * The status page, served as three plain files (no build step, nothing from a CDN): the HTML, its
 * stylesheet and its script. The script is a file of its own so the Content-Security-Policy can
 * forbid every inline script. It builds every node with textContent and never parses data as
 * HTML: container ids, image names and messages come from callers.
 */

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Berth status</title>
<link rel="stylesheet" href="/status.css">
<script src="/status.js" defer></script>
</head>
<body>
<header>
  <h1>Berth</h1>
  <span id="agent"></span>
  <span id="engine" class="pill">engine: connecting…</span>
  <span id="disk" class="pill">checkpoints: …</span>
  <span id="stream" class="pill">live: connecting…</span>
</header>
<main>
<section>
  <h2>Containers <span id="count"></span></h2>
  <table id="containers">
    <thead><tr><th>Container</th><th>State</th><th>Image</th><th>Age</th><th>Resources</th><th>Stages</th><th>Pull</th></tr></thead>
    <tbody id="containers-body"></tbody>
  </table>
  <p id="empty" class="muted">No containers.</p>
</section>
<section>
  <h2>Recent terminations</h2>
  <table id="terminations">
    <thead><tr><th>When</th><th>Container</th><th>State</th><th>Reason</th><th>Message</th></tr></thead>
    <tbody id="terminations-body"></tbody>
  </table>
</section>
</main>
<footer class="muted">Read-only. Updates live from Berth's event stream (Server-Sent Events).</footer>
</body>
</html>
`;

export const LOGIN_HTML = (failed: boolean): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Berth status: sign in</title>
<link rel="stylesheet" href="/status.css">
</head>
<body>
<header><h1>Berth</h1></header>
<main>
<form method="post" action="/login" class="login">
  <p>This Berth requires a bearer token (one of --auth_token_file's).</p>
  ${failed ? '<p class="error">That token is not valid.</p>' : ""}
  <label>Token <input type="password" name="token" autocomplete="current-password" required autofocus></label>
  <button type="submit">Open the status page</button>
</form>
</main>
</body>
</html>
`;

export const PAGE_CSS = `
:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --muted: #6e7781; --line: #d0d7de; }
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; }
header { display: flex; gap: 12px; align-items: center; padding: 10px 16px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0 8px 0 0; }
main { padding: 8px 16px; }
h2 { font-size: 15px; margin: 16px 0 6px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; font-size: 12px; color: var(--muted); }
td.id, td.image { font-family: ui-monospace, monospace; word-break: break-all; max-width: 28em; }
.pill { font-size: 12px; padding: 2px 8px; border-radius: 10px; border: 1px solid var(--line); }
.pill.ok { color: var(--ok); border-color: var(--ok); }
.pill.bad { color: var(--bad); border-color: var(--bad); }
.state { font-weight: 600; font-size: 12px; }
.state.RUNNING { color: var(--ok); }
.state.TERMINATED { color: var(--muted); }
.state.DESTROYING { color: var(--warn); }
.state.FETCHING, .state.PULLING, .state.MOUNTING { color: var(--warn); }
.stages { display: flex; gap: 4px; flex-wrap: wrap; }
.stage { font-size: 11px; padding: 1px 6px; border-radius: 4px; background: rgba(127,127,127,.15); }
.stage.current { outline: 1px solid var(--warn); }
progress { width: 10em; vertical-align: middle; }
.muted { color: var(--muted); }
.error { color: var(--bad); }
.login { max-width: 28em; display: grid; gap: 10px; }
footer { padding: 8px 16px; font-size: 12px; }
`;

/** The page's script. Every value from the server goes in with textContent or a property, never innerHTML. */
export const PAGE_JS = `"use strict";
(function () {
  var rows = new Map();
  var terminations = [];
  var MAX_TERMINATIONS = 50;
  var clockOffset = 0;
  var body = document.getElementById("containers-body");
  var termBody = document.getElementById("terminations-body");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function now() { return Date.now() + clockOffset; }
  function duration(ms) {
    if (ms < 1000) return Math.max(0, Math.round(ms)) + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + Math.floor(s % 60) + "s";
    var h = Math.floor(m / 60);
    if (h < 48) return h + "h " + (m % 60) + "m";
    return Math.floor(h / 24) + "d " + (h % 24) + "h";
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
  }
  function resources(r) {
    if (!r) return "";
    var parts = [];
    if (r.cpus !== undefined) parts.push("cpus " + r.cpus);
    if (r.memMb !== undefined) parts.push("mem " + r.memMb + " MB");
    if (r.diskMb !== undefined) parts.push("disk " + r.diskMb + " MB");
    return parts.join(", ");
  }
  function stages(row) {
    var box = el("div", "stages");
    var list = row.stages || [];
    for (var i = 0; i < list.length; i++) {
      var s = list[i];
      if (s.state === "TERMINATED") continue;
      var last = i === list.length - 1;
      var end = last ? (row.termination ? row.termination.at : now()) : list[i + 1].at;
      var text = s.state + " " + duration(end - s.at);
      var chip = el("span", "stage" + (last && !row.termination ? " current" : ""), text);
      chip.dataset.state = s.state;
      box.appendChild(chip);
    }
    return box;
  }
  function pull(row) {
    var td = el("td", "pull");
    var p = row.pull;
    if (!p) return td;
    var done = row.state !== "PULLING";
    var bar = el("progress");
    bar.max = p.bytesTotal > 0 ? p.bytesTotal : 1;
    bar.value = done ? bar.max : Math.min(p.bytesCurrent, bar.max);
    td.appendChild(bar);
    td.appendChild(el("span", "muted", " " + bytes(p.bytesCurrent) + (p.bytesTotal > 0 ? " / " + bytes(p.bytesTotal) : "") + ", " + p.layersDone + "/" + p.layersTotal + " layers"));
    td.title = p.ref + ": " + p.status;
    return td;
  }
  function render(row) {
    var tr = el("tr");
    tr.dataset.id = row.id;
    tr.appendChild(el("td", "id", row.id));
    var st = el("td");
    st.appendChild(el("span", "state " + row.state, row.state));
    tr.appendChild(st);
    tr.appendChild(el("td", "image", row.image || ""));
    var age = el("td", "age");
    if (row.launchedAt) age.dataset.since = String(row.launchedAt);
    age.textContent = row.launchedAt ? duration(now() - row.launchedAt) : "";
    tr.appendChild(age);
    tr.appendChild(el("td", "resources", resources(row.resources)));
    var tl = el("td");
    tl.appendChild(stages(row));
    tr.appendChild(tl);
    tr.appendChild(pull(row));
    return tr;
  }
  function upsert(row) {
    var old = rows.get(row.id);
    var tr = render(row);
    if (old) body.replaceChild(tr, old.tr);
    else body.insertBefore(tr, body.firstChild);
    rows.set(row.id, { row: row, tr: tr });
    if (row.termination && !(old && old.row.termination)) addTermination(row);
    counts();
  }
  function addTermination(row) {
    terminations.unshift(row);
    if (terminations.length > MAX_TERMINATIONS) terminations.length = MAX_TERMINATIONS;
    renderTerminations();
  }
  function renderTerminations() {
    while (termBody.firstChild) termBody.removeChild(termBody.firstChild);
    terminations.forEach(function (row) {
      var t = row.termination;
      var tr = el("tr");
      tr.dataset.id = row.id;
      tr.appendChild(el("td", "when", new Date(t.at).toLocaleTimeString()));
      tr.appendChild(el("td", "id", row.id));
      tr.appendChild(el("td", "state", t.state + (t.exitCode !== undefined ? " (exit " + t.exitCode + ")" : t.signal !== undefined ? " (signal " + t.signal + ")" : "")));
      tr.appendChild(el("td", "reason", t.reason || ""));
      tr.appendChild(el("td", "message", t.message));
      termBody.appendChild(tr);
    });
  }
  function counts() {
    document.getElementById("count").textContent = "(" + rows.size + ")";
    document.getElementById("empty").hidden = rows.size > 0;
  }
  function engine(h) {
    var e = document.getElementById("engine");
    e.textContent = "engine " + h.engine + ": " + (h.connected ? "connected" : "unreachable") + (h.reconnects > 0 ? " (event stream reconnected " + h.reconnects + "×)" : "");
    e.className = "pill " + (h.connected ? "ok" : "bad");
    var d = document.getElementById("disk");
    d.textContent = "checkpoints: " + (h.diskOk ? "ok" : "failing");
    d.className = "pill " + (h.diskOk ? "ok" : "bad");
  }
  function live(ok, text) {
    var s = document.getElementById("stream");
    s.textContent = "live: " + text;
    s.className = "pill " + (ok ? "ok" : "bad");
  }
  function tick() {
    rows.forEach(function (entry) {
      var r = entry.row;
      var age = entry.tr.querySelector("td.age");
      if (age && r.launchedAt) age.textContent = duration(now() - r.launchedAt);
      if (!r.termination && r.stages && r.stages.length > 0) {
        var td = entry.tr.children[5];
        td.replaceChild(stages(r), td.firstChild);
      }
    });
  }

  var source = new EventSource("/events");
  source.addEventListener("snapshot", function (ev) {
    var s = JSON.parse(ev.data);
    clockOffset = s.now - Date.now();
    rows.clear();
    terminations = [];
    while (body.firstChild) body.removeChild(body.firstChild);
    document.getElementById("agent").textContent = "agent " + s.agentId;
    s.containers
      .slice()
      .sort(function (a, b) { return (a.launchedAt || 0) - (b.launchedAt || 0); })
      .forEach(upsert);
    terminations.sort(function (a, b) { return b.termination.at - a.termination.at; });
    renderTerminations();
    engine(s.engine);
    counts();
    live(true, "connected");
    document.body.dataset.ready = "true";
  });
  source.addEventListener("row", function (ev) { upsert(JSON.parse(ev.data)); });
  source.addEventListener("engine", function (ev) { engine(JSON.parse(ev.data)); });
  source.addEventListener("error", function () { live(false, source.readyState === EventSource.CLOSED ? "closed (reload the page)" : "reconnecting…"); });
  // Local only: ages and running stage clocks advance between events; nothing is fetched.
  setInterval(tick, 1000);
})();
`;
