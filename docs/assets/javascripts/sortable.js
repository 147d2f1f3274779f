/* LVLM Atlas: click a header of a table with class "atlas-sortable" to sort it (again to reverse).
   Reads only cell text or the data-sort attribute the generator wrote; never evaluates content. */
(function () {
  "use strict";
  function key(cell) {
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    var num = parseFloat(raw);
    return raw !== "" && !isNaN(num) && /^-?[0-9.]+(e-?[0-9]+)?%?$/i.test(raw) ? num : raw.toLowerCase();
  }
  function sortBy(table, index, th) {
    var body = table.tBodies[0];
    if (!body) return;
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[index]), y = key(b.cells[index]);
      var empty = function (v) { return v === "" || v === "–"; };
      if (empty(x) !== empty(y)) return empty(x) ? 1 : -1;       // blanks last, both directions
      if (typeof x === "number" && typeof y === "number") return asc ? x - y : y - x;
      return asc ? String(x).localeCompare(String(y)) : String(y).localeCompare(String(x));
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  function init() {
    var tables = document.querySelectorAll("table.atlas-sortable");
    Array.prototype.forEach.call(tables, function (table) {
      if (!table.tHead || table.getAttribute("data-sortable-ready")) return;
      table.setAttribute("data-sortable-ready", "1");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "atlas-sort";
        while (th.firstChild) b.appendChild(th.firstChild);
        th.appendChild(b);
        b.addEventListener("click", function () { sortBy(table, i, th); });
      });
    });
  }
  if (typeof document$ !== "undefined" && document$.subscribe) { document$.subscribe(init); }
  else if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); }
  else { init(); }
})();
