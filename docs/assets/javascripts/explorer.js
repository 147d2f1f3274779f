/* LVLM Atlas Explorer: filters, free-text search and sorting over assets/data/papers.json.
 * Data is only ever inserted with textContent / setAttribute on known-safe attributes, and links to
 * external sites are emitted only for http(s) URLs. Filter state lives in the URL query string (the
 * free text is `text`, not `q`, which mkdocs-material's search claims). */
(function () {
  "use strict";
  var root = document.getElementById("atlas-explorer");
  if (!root) return;

  var FILTERS = ["stage", "bottleneck", "granularity", "modality", "year"];
  var SORT_KEYS = ["name", "year", "venue", "stage", "category", "summary", "code"];
  var state = { q: "", runnable: false, sort: "year", dir: "desc" };
  FILTERS.forEach(function (f) { state[f] = ""; });
  var data = null;
  var els = {
    q: document.getElementById("ax-q"),
    runnable: document.getElementById("ax-runnable"),
    reset: document.getElementById("ax-reset"),
    count: document.getElementById("ax-count"),
    body: root.querySelector("#ax-table tbody"),
    heads: root.querySelectorAll("#ax-table th[data-key]")
  };
  FILTERS.forEach(function (f) { els[f] = document.getElementById("ax-" + f); });

  function isHttp(url) { return typeof url === "string" && /^https?:\/\/[^\s]+$/i.test(url); }

  function readQuery() {
    var params = new URLSearchParams(window.location.search);
    state.q = params.get("text") || "";
    FILTERS.forEach(function (f) { state[f] = params.get(f) || ""; });
    state.runnable = params.get("runnable") === "1";
    var sort = params.get("sort");
    state.sort = SORT_KEYS.indexOf(sort) >= 0 ? sort : "year";
    state.dir = params.get("dir") === "asc" ? "asc" : "desc";
  }

  function writeQuery() {
    var params = new URLSearchParams();
    if (state.q) params.set("text", state.q);
    FILTERS.forEach(function (f) { if (state[f]) params.set(f, state[f]); });
    if (state.runnable) params.set("runnable", "1");
    if (state.sort !== "year" || state.dir !== "desc") { params.set("sort", state.sort); params.set("dir", state.dir); }
    var qs = params.toString();
    window.history.replaceState(null, "", window.location.pathname + (qs ? "?" + qs : "") + window.location.hash);
  }

  function syncControls() {
    els.q.value = state.q;
    FILTERS.forEach(function (f) {
      var sel = els[f];
      var ok = Array.prototype.some.call(sel.options, function (o) { return o.value === state[f]; });
      if (!ok) state[f] = "";
      sel.value = state[f];
    });
    els.runnable.checked = state.runnable;
    Array.prototype.forEach.call(els.heads, function (th) {
      th.setAttribute("aria-sort", th.dataset.key === state.sort ? (state.dir === "asc" ? "ascending" : "descending") : "none");
    });
  }

  function haystack(p) {
    return [p.id, p.name, p.title, p.authors.join(" "), p.venue, p.summary, p.category, String(p.year)]
      .join(" \u0001 ").toLowerCase();
  }

  function matches(p) {
    if (state.runnable && !p.runnable) return false;
    if (state.year && String(p.year) !== state.year) return false;
    var lists = ["stage", "bottleneck", "granularity", "modality"];
    for (var i = 0; i < lists.length; i++) {
      var f = lists[i];
      if (state[f] && p[f].indexOf(state[f]) < 0) return false;
    }
    if (state.q) {
      var words = state.q.toLowerCase().split(/\s+/).filter(Boolean);
      for (var j = 0; j < words.length; j++) if (p._text.indexOf(words[j]) < 0) return false;
    }
    return true;
  }

  function sortValue(p, key) {
    if (key === "year") return p.date;
    if (key === "stage") return p.stage.join(",");
    if (key === "code") return p.code ? 0 : 1;
    return String(p[key] || "").toLowerCase();
  }

  function compare(a, b) {
    var va = sortValue(a, state.sort), vb = sortValue(b, state.sort);
    var c = va < vb ? -1 : va > vb ? 1 : 0;
    if (c === 0) c = a.name.toLowerCase() < b.name.toLowerCase() ? -1 : a.name.toLowerCase() > b.name.toLowerCase() ? 1 : 0;
    return state.dir === "asc" ? c : -c;
  }

  function cell(tr, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text !== undefined) td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function badge(parent, text, cls) {
    var s = document.createElement("span");
    s.className = "atlas-badge " + cls;
    s.textContent = text;
    parent.appendChild(document.createTextNode(" "));
    parent.appendChild(s);
  }

  function row(p) {
    var tr = document.createElement("tr");
    tr.dataset.id = p.id;
    var name = cell(tr);
    var a = document.createElement("a");
    a.href = root.dataset.root + p.url;
    a.textContent = p.name;
    a.title = p.title;
    name.appendChild(a);
    if (p.runnable) badge(name, "runnable", "atlas-badge--runnable");
    if (p.candidate) badge(name, "candidate", "atlas-badge--candidate");
    cell(tr, String(p.year));
    cell(tr, p.venue || "Preprint");
    cell(tr, p.stage.map(function (s) { return data.labels.stage[s] || s; }).join(", "));
    cell(tr, p.category);
    cell(tr, p.summary, "atlas-summary");
    var code = cell(tr);
    if (isHttp(p.code)) {
      var c = document.createElement("a");
      c.href = p.code;
      c.rel = "noopener nofollow";
      c.textContent = "code";
      code.appendChild(c);
    } else {
      code.textContent = "–";
    }
    return tr;
  }

  function render() {
    var shown = data.papers.filter(matches).sort(compare);
    var frag = document.createDocumentFragment();
    shown.forEach(function (p) { frag.appendChild(row(p)); });
    els.body.replaceChildren(frag);
    els.count.textContent = "Showing " + shown.length + " of " + data.papers.length + " papers";
    els.count.dataset.shown = String(shown.length);
    syncControls();
  }

  function update() { writeQuery(); render(); }

  function bind() {
    var timer = null;
    root.querySelector("form").addEventListener("submit", function (ev) { ev.preventDefault(); });
    els.q.addEventListener("input", function () {
      state.q = els.q.value;
      window.clearTimeout(timer);
      timer = window.setTimeout(update, 120);
    });
    FILTERS.forEach(function (f) {
      els[f].addEventListener("change", function () { state[f] = els[f].value; update(); });
    });
    els.runnable.addEventListener("change", function () { state.runnable = els.runnable.checked; update(); });
    els.reset.addEventListener("click", function () {
      state.q = ""; state.runnable = false; state.sort = "year"; state.dir = "desc";
      FILTERS.forEach(function (f) { state[f] = ""; });
      update();
    });
    Array.prototype.forEach.call(els.heads, function (th) {
      th.querySelector("button").addEventListener("click", function () {
        var key = th.dataset.key;
        if (state.sort === key) state.dir = state.dir === "asc" ? "desc" : "asc";
        else { state.sort = key; state.dir = key === "year" ? "desc" : "asc"; }
        update();
      });
    });
  }

  readQuery();
  fetch(root.dataset.src)
    .then(function (r) {
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.json();
    })
    .then(function (json) {
      data = json;
      data.papers.forEach(function (p) { p._text = haystack(p); });
      bind();
      render();
      root.dataset.ready = "1";
    })
    .catch(function (err) {
      els.count.textContent = "Could not load the paper list (" + err.message + "). Serve the site over http (make serve).";
    });
})();
