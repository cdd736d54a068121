// twistedspy: sort a table by clicking a column heading, and (when asked) update the
// page in place every few seconds from its own JSON. Pages work without it: the headings
// of sortable columns are also links that ask the server to sort, and ?refresh=N reloads.
// No inline script, no eval: the Content-Security-Policy allows this file only.
"use strict";
(function () {
  var STORE = "twistedspy-live";
  var CHOICES = [0, 2, 5, 10, 30];

  // --- sorting ---------------------------------------------------------------------

  function key(cell) {
    var raw = cell.getAttribute("data-sort");
    if (raw === null) { raw = cell.textContent.trim(); }
    var number = Number(raw);
    return raw !== "" && !isNaN(number) ? number : raw.toLowerCase();
  }
  function compare(a, b) {
    if (typeof a === typeof b) { return a < b ? -1 : a > b ? 1 : 0; }
    return typeof a === "number" ? -1 : 1;
  }
  function order(table, index, descending) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (x, y) {
      var by = compare(key(x.cells[index]), key(y.cells[index]));
      return descending ? -by : by;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  function sortBy(table, index, heading) {
    var descending = heading.getAttribute("aria-sort") === "ascending";
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) { th.removeAttribute("aria-sort"); });
    heading.setAttribute("aria-sort", descending ? "descending" : "ascending");
    order(table, index, descending);
  }
  // The order a person chose by clicking, applied again after an update.
  function keepOrder(table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      var sort = th.getAttribute("aria-sort");
      if (sort) { order(table, index, sort === "descending"); }
    });
  }

  // --- formatting, as the server's render.format_value does --------------------------

  var GROUPED = new Intl.NumberFormat("en-US");
  var TWO = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function bytes(value) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    var size = value;
    for (var i = 0; i < units.length; i++) {
      if (Math.abs(size) < 1024 || i === units.length - 1) {
        return i === 0 ? Math.trunc(size) + " B" : size.toFixed(1) + " " + units[i];
      }
      size /= 1024;
    }
    return String(value);
  }
  function seconds(value) {
    var total = Math.trunc(value);
    var days = Math.floor(total / 86400);
    var rest = total % 86400;
    var clock = pad(Math.floor(rest / 3600)) + ":" + pad(Math.floor(rest % 3600 / 60)) + ":" + pad(rest % 60);
    return days ? days + "d " + clock : clock;
  }
  function time(value) {
    var d = new Date(value * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }
  function format(value, unit) {
    if (value === null || value === undefined) { return ""; }
    if (typeof value === "boolean") { return value ? "yes" : "no"; }
    if (typeof value !== "number") { return String(value); }
    switch (unit) {
      case "bytes": return bytes(value);
      case "rate": return bytes(value) + "/s";
      case "percent": return value.toFixed(1) + " %";
      case "seconds": return seconds(value);
      case "time": return time(value);
      case "float": return TWO.format(value);
      case "int": return Number.isInteger(value) ? GROUPED.format(value) : TWO.format(value);
      default: return String(value);
    }
  }

  // --- live updates ----------------------------------------------------------------

  function selected(node) {
    // A cell inside what the person has selected keeps its text, so the selection holds.
    var selection = window.getSelection();
    return selection && !selection.isCollapsed && selection.containsNode(node, true);
  }
  function setCell(cell, value, unit) {
    var text = format(value, unit);
    var target = cell.querySelector("a") || cell;
    var meter = cell.querySelector("meter");
    if (typeof value === "number") { cell.setAttribute("data-sort", String(value)); }
    if (meter && typeof value === "number") { meter.value = value; }
    var now = target === cell && meter ? meter.nextSibling : target.firstChild;
    var shown = now ? now.textContent.trim() : "";
    if (shown === text || selected(cell)) { return; }
    if (target === cell && meter) {
      if (now) { now.textContent = " " + text; } else { cell.appendChild(document.createTextNode(" " + text)); }
    } else {
      target.textContent = text;
    }
  }
  function setMarks(row, why, units) {
    // A value that crosses a threshold is marked, one back under it unmarked, as a reload
    // would draw them (render.py writes "UNIT mark" and the reason as the title).
    Array.prototype.forEach.call(row.cells, function (cell, column) {
      var reason = why[column];
      if (reason === undefined) {
        if (cell.classList.contains("mark")) { cell.classList.remove("mark"); cell.removeAttribute("title"); }
        return;
      }
      cell.classList.add(units[column], "mark");
      cell.title = reason;
    });
  }
  function updateTable(table, data) {
    var heads = table.tHead.rows[0].cells;
    var units = Array.prototype.map.call(heads, function (th) { return th.getAttribute("data-unit") || "text"; });
    if (units.length !== data.columns.length) { return; }
    var body = table.tBodies[0];
    // Rows are matched by their first cell where it names the row (a PID, an interface,
    // a mount point), by position where the first column is a measurement.
    var byKey = units[0] === "text" || units[0] === "id";
    var existing = {};
    Array.prototype.forEach.call(body.rows, function (row, index) {
      existing[byKey ? row.cells[0].textContent.trim() : String(index)] = row;
    });
    var template = body.rows[0];
    var seen = {};
    var marks = {};  // row index -> column -> why, as the server marks them
    (data.marks || []).forEach(function (mark) {
      (marks[mark[0]] = marks[mark[0]] || {})[mark[1]] = mark[2];
    });
    data.rows.forEach(function (values, index) {
      var name = byKey ? format(values[0], units[0]) : String(index);
      seen[name] = true;
      var row = existing[name];
      if (!row) {
        if (!template) { return; }
        row = template.cloneNode(true);
        var old = template.cells[0].textContent.trim();
        Array.prototype.forEach.call(row.querySelectorAll("a"), function (a) {
          a.setAttribute("href", a.getAttribute("href").split(old).join(encodeURIComponent(name)));
        });
        Array.prototype.forEach.call(row.cells, function (cell) { cell.classList.remove("mark"); cell.removeAttribute("title"); });
        body.appendChild(row);
      }
      values.forEach(function (value, column) { setCell(row.cells[column], value, units[column]); });
      setMarks(row, marks[index] || {}, units);
    });
    Object.keys(existing).forEach(function (name) {
      if (!seen[name] && !selected(existing[name])) { body.removeChild(existing[name]); }
    });
    keepOrder(table);
    var count = table.closest("section") && table.closest("section").querySelector("h2 .count");
    if (count) { count.textContent = body.rows.length + (body.rows.length === 1 ? " row" : " rows"); }
  }
  function updateSeries(figure, data) {
    var last = figure.querySelector(".last");
    var values = data.values;
    if (last) { last.textContent = values.length ? format(values[values.length - 1], data.unit) : ""; }
    var svg = figure.querySelector("svg");
    if (!values.length) { return; }
    var width = 240, height = 48;
    if (!svg) {
      var ns = "http://www.w3.org/2000/svg";
      svg = document.createElementNS(ns, "svg");
      svg.setAttribute("width", width); svg.setAttribute("height", height);
      svg.setAttribute("viewBox", "0 0 " + width + " " + height); svg.setAttribute("role", "img");
      var line = document.createElementNS(ns, "polyline");
      line.setAttribute("fill", "none");
      svg.appendChild(line);
      figure.appendChild(svg);
    }
    var top = Math.max.apply(null, values.concat([1e-9]));
    if (data.unit === "percent") { top = Math.max(top, 100); }
    var step = width / Math.max(1, values.length - 1);
    var points = values.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (height - 2 - (v / top) * (height - 4)).toFixed(1);
    });
    svg.querySelector("polyline").setAttribute("points", points.join(" "));
  }
  function apply(data) {
    if (!data || !data.tables) { return; }
    var tables = {};
    Array.prototype.forEach.call(document.querySelectorAll("main section"), function (section) {
      var heading = section.querySelector("h2");
      var table = section.querySelector("table.data");
      if (heading && table) { tables[heading.firstChild.textContent.trim()] = table; }
    });
    data.tables.forEach(function (t) { if (tables[t.title]) { updateTable(tables[t.title], t); } });
    var figures = document.querySelectorAll("figure.series");
    (data.series || []).forEach(function (s, i) { if (figures[i]) { updateSeries(figures[i], s); } });
    explainCut();
    var generated = document.querySelector("footer .generated");
    if (generated && data.generated) { generated.textContent = "Generated " + data.generated.replace("T", " ").slice(0, 19); }
  }

  var timer = null;
  var busy = false;
  function jsonUrl() {
    var url = new URL(window.location.href);
    url.searchParams.set("format", "json");
    url.searchParams.delete("refresh");
    return url.toString();
  }
  function tick() {
    // One request at a time, and none while the tab is hidden.
    if (busy || document.hidden) { return; }
    busy = true;
    fetch(jsonUrl(), { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(apply, function () { return null; })
      .then(function () { busy = false; });
  }
  function every(period) {
    if (timer !== null) { window.clearInterval(timer); timer = null; }
    document.documentElement.classList.toggle("live", period > 0);
    if (period > 0) { timer = window.setInterval(tick, period * 1000); }
  }
  function remembered() {
    try { return Number(window.localStorage.getItem(STORE)) || 0; } catch (e) { return 0; }
  }
  function remember(period) {
    try { window.localStorage.setItem(STORE, String(period)); } catch (e) { /* private mode */ }
  }
  function control() {
    var heading = document.querySelector("main h1");
    if (!heading || !document.querySelector("footer a.json")) { return; }
    var label = document.createElement("label");
    label.className = "live-control";
    label.appendChild(document.createTextNode("Live: "));
    var select = document.createElement("select");
    select.id = "live";
    CHOICES.forEach(function (period) {
      var option = document.createElement("option");
      option.value = String(period);
      option.textContent = period ? "every " + period + " s" : "off";
      select.appendChild(option);
    });
    var period = remembered();
    if (CHOICES.indexOf(period) < 0) { period = 0; }
    select.value = String(period);
    select.addEventListener("change", function () {
      var chosen = Number(select.value);
      remember(chosen);
      every(chosen);
      if (chosen) { tick(); }
    });
    label.appendChild(select);
    heading.insertAdjacentElement("afterend", label);
    every(period);
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden && timer !== null) { tick(); }
    });
  }

  // A cell the stylesheet cuts short (a long command line) shows its whole text as a
  // tooltip; a mark's tooltip (why it is marked) stays.
  function explainCut() {
    Array.prototype.forEach.call(document.querySelectorAll("table.data td:not([class]), table.data td.text"), function (cell) {
      if (cell.classList.contains("mark")) { return; }
      if (cell.scrollWidth > cell.clientWidth) { cell.title = cell.textContent; } else { cell.removeAttribute("title"); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.data"), function (table) {
      if (!table.tHead || !table.tBodies.length) { return; }
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        th.classList.add("js-sortable");
        th.addEventListener("click", function (event) {
          event.preventDefault();
          sortBy(table, index, th);
        });
      });
    });
    control();
    explainCut();
  });
})();
