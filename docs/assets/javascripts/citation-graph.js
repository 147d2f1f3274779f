/* Interactive citation graph (LVLM Atlas). Reads the JSON written by lvlm_atlas/site/pages/graph.py and draws
 * it with the vendored Cytoscape.js at the positions computed at build time (no layout in the
 * browser, so thousands of nodes stay smooth). Data only ever reaches the page through textContent or
 * Cytoscape's canvas; nothing from the data is parsed as HTML. Without JavaScript, the static SVG in
 * the container stays in place. */
(function () {
  "use strict";

  function start() {
    var box = document.getElementById("atlas-graph");
    if (!box || box.dataset.started || typeof window.cytoscape !== "function") return;
    box.dataset.started = "1";
    fetch(box.dataset.src, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) { draw(box, data); })
      .catch(function (err) {
        box.dataset.error = String(err);  // the static SVG stays visible
      });
  }

  function draw(box, data) {
    var colors = {};
    data.stages.forEach(function (s) { colors[s.id] = s.color; });
    var big = data.nodes.length > 1500;
    var elements = data.nodes.map(function (n) {
      var facets = [];
      Object.keys(n.facets).forEach(function (f) { facets = facets.concat(n.facets[f]); });
      return {
        group: "nodes",
        data: { id: n.id, name: n.name, title: n.title, url: n.url, stage: n.stage, size: n.size,
                color: colors[n.stage] || "#777", facets: facets },
        position: { x: n.x, y: n.y }
      };
    });
    data.edges.forEach(function (e, i) {
      elements.push({ group: "edges", data: { id: "e" + i, source: data.nodes[e[0]].id,
                                              target: data.nodes[e[1]].id, kind: e[2] } });
    });

    var fallback = box.querySelector(".atlas-graph-fallback");
    if (fallback) fallback.remove();
    var cy = window.cytoscape({
      container: box,
      elements: elements,
      layout: { name: "preset", fit: true, padding: 20 },
      minZoom: 0.05, maxZoom: 8,
      textureOnViewport: big, hideEdgesOnViewport: big, pixelRatio: big ? 1 : "auto",
      style: [
        { selector: "node", style: {
          "background-color": "data(color)", width: "data(size)", height: "data(size)",
          label: "", "font-size": 10, "text-valign": "bottom", color: "#333",
          "min-zoomed-font-size": 8 } },
        { selector: "node.labelled, node:selected", style: { label: "data(name)" } },
        { selector: "node.hit", style: { "border-width": 3, "border-color": "#000" } },
        { selector: "node.faded", style: { opacity: 0.15 } },
        { selector: "edge", style: {
          width: 0.8, "line-color": "#aaa", "curve-style": big ? "haystack" : "straight",
          "target-arrow-shape": big ? "none" : "triangle", "target-arrow-color": "#aaa", "arrow-scale": 0.6,
          opacity: 0.6 } },
        { selector: "edge[kind = 'builds_on'], edge[kind = 'both']", style: { "line-color": "#666", width: 1.4 } },
        { selector: "edge[kind = 'compares']", style: { "line-color": "#b26a00", "line-style": "dotted", width: 1.2 } },
        { selector: "edge.faded", style: { opacity: 0.05 } },
        { selector: ".hidden", style: { display: "none" } }
      ]
    });
    window.atlasCitationGraph = cy;

    // labels for the most central papers
    cy.nodes().sort(function (a, b) { return b.data("size") - a.data("size"); })
      .slice(0, 25).addClass("labelled");

    var tip = document.createElement("div");
    tip.className = "atlas-graph-tip";
    tip.hidden = true;
    box.appendChild(tip);
    cy.on("mouseover", "node", function (ev) {
      var n = ev.target, p = ev.renderedPosition || n.renderedPosition();
      tip.textContent = n.data("name") + ": " + n.data("title");
      tip.style.left = (p.x + 12) + "px";
      tip.style.top = (p.y + 12) + "px";
      tip.hidden = false;
    });
    cy.on("mouseout", "node", function () { tip.hidden = true; });
    cy.on("tap", "node", function (ev) {
      window.location.href = ev.target.data("url");
    });

    setupControls(cy, data, box);
    box.dataset.rendered = String(cy.nodes().length);
  }

  function setupControls(cy, data, box) {
    var form = document.getElementById("atlas-graph-controls");
    if (!form) return;
    form.hidden = false;
    var facetSelect = form.querySelector("select[name=facet]");
    var counter = form.querySelector("output[name=count]");
    data.facets.forEach(function (f) {
      var o = document.createElement("option");
      o.value = f.key;
      o.textContent = f.label;
      facetSelect.appendChild(o);
    });
    var names = document.getElementById("atlas-graph-names");
    data.nodes.forEach(function (n) {
      var o = document.createElement("option");
      o.value = n.name;
      names.appendChild(o);
    });

    function applyFilters() {
      var stages = {};
      Array.prototype.forEach.call(form.querySelectorAll("input[name=stage]"), function (c) {
        stages[c.value] = c.checked;
      });
      var facet = facetSelect.value;
      cy.batch(function () {
        cy.nodes().forEach(function (n) {
          var ok = stages[n.data("stage")] !== false && (!facet || n.data("facets").indexOf(facet) >= 0);
          n.toggleClass("hidden", !ok);
        });
      });
      var shown = cy.nodes().not(".hidden").length;
      counter.textContent = shown + " of " + cy.nodes().length + " papers shown";
      box.dataset.visible = String(shown);
    }
    form.addEventListener("change", function (ev) {
      if (ev.target.name === "stage" || ev.target.name === "facet") applyFilters();
    });

    function find(q) {
      q = q.trim().toLowerCase();
      cy.elements().removeClass("faded hit");
      if (!q) return;
      var hit = cy.nodes().filter(function (n) {
        return n.id() === q || n.data("name").toLowerCase() === q;
      });
      if (!hit.length) {
        hit = cy.nodes().filter(function (n) {
          return n.data("name").toLowerCase().indexOf(q) >= 0 || n.id().indexOf(q) >= 0;
        });
      }
      if (!hit.length) return;
      var hood = hit.closedNeighborhood();
      cy.elements().not(hood).addClass("faded");
      hit.addClass("hit labelled");
      cy.animate({ fit: { eles: hood, padding: 60 } }, { duration: 300 });
    }
    var q = form.querySelector("input[name=q]");
    q.addEventListener("change", function () { find(q.value); });
    q.addEventListener("keydown", function (ev) { if (ev.key === "Enter") find(q.value); });
    applyFilters();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
  // mkdocs-material instant loading replaces the page without a reload
  if (window.document$ && typeof window.document$.subscribe === "function") window.document$.subscribe(start);
})();
