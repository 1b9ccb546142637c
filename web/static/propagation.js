// The propagation page keeps itself current: every few seconds it fetches its JSON
// (/records/NAME/propagation.json, the API's document under the page's own access
// rule) and redraws the summary, the warnings and the rows. The server renders the
// whole page first, so without this script the page is complete, only not live.
// Everything is drawn with textContent, never parsed as markup: no server value can inject any.
(function () {
  "use strict";
  var EVERY = 5000; // ms between refreshes
  var LABELS = { in_sync: "in sync", stale: "stale", error: "error" };
  var root = document.getElementById("propagation");
  if (!root || !window.fetch) return;
  var url = root.getAttribute("data-json");

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function badge(status) {
    return el("span", "status status-" + status, LABELS[status] || status);
  }

  function values(list, shown) {
    var cell = document.createDocumentFragment();
    if (!shown) {
      cell.appendChild(document.createTextNode("-"));
    } else if (!list || !list.length) {
      cell.appendChild(el("em", null, "no data"));
    } else {
      list.forEach(function (v) {
        cell.appendChild(el("span", "mono value", v));
        cell.appendChild(document.createTextNode(" "));
      });
    }
    return cell;
  }

  function opt(value) {
    return value === null || value === undefined ? "-" : String(value);
  }

  function ms(latency) {
    return latency === null || latency === undefined ? "-" : Math.round(latency * 1000) + " ms";
  }

  function clock(at) {
    if (!at) return "-";
    return new Date(at * 1000).toISOString().slice(0, 19).replace("T", " ");
  }

  function td(content, className, label) {
    var cell = el("td", className);
    if (label) cell.setAttribute("data-label", label); // names the cell on a phone (style.css .stack)
    if (content instanceof Node) cell.appendChild(content);
    else cell.textContent = content;
    return cell;
  }

  function statusCell(status, reason) {
    var cell = el("td");
    cell.appendChild(badge(status));
    cell.appendChild(document.createTextNode(" "));
    cell.appendChild(el("small", null, reason));
    return cell;
  }

  function where(address, port) {
    return address + (port !== 53 ? ":" + port : "");
  }

  function redraw(tableId, rows, draw, empty) {
    var table = document.getElementById(tableId);
    if (!table) return;
    var body = el("tbody");
    rows.forEach(function (row) { body.appendChild(draw(row)); });
    if (!rows.length && empty) {
      var tr = el("tr");
      var cell = td(empty);
      cell.colSpan = table.tHead.rows[0].cells.length;
      tr.appendChild(cell);
      body.appendChild(tr);
    }
    table.replaceChild(body, table.tBodies[0]);
  }

  function nameserverRow(row) {
    var tr = el("tr", "row-" + row.status);
    tr.setAttribute("data-address", row.address || "");
    tr.setAttribute("data-port", row.port);
    var server = el("td", "name");
    server.appendChild(el("span", "mono", row.address ? where(row.address, row.port) : "no address"));
    row.names.forEach(function (n) {
      server.appendChild(document.createTextNode(" "));
      server.appendChild(el("small", null, n));
    });
    tr.appendChild(server);
    tr.appendChild(td(row.sources.join(", "), null, "listed by"));
    tr.appendChild(statusCell(row.status, row.reason));
    tr.appendChild(td(values(row.answer, row.rcode !== null)));
    tr.appendChild(td(row.aa === null ? "-" : row.aa ? "yes" : "no", null, "AA"));
    tr.appendChild(td(opt(row.ttl), null, "TTL"));
    tr.appendChild(td(opt(row.serial), "mono", "serial"));
    tr.appendChild(td(ms(row.latency), "nowrap", "latency"));
    return tr;
  }

  function resolverRow(row) {
    var tr = el("tr", "row-" + row.status);
    tr.setAttribute("data-address", row.address);
    tr.setAttribute("data-port", row.port);
    tr.appendChild(td(where(row.address, row.port), "name mono"));
    tr.appendChild(statusCell(row.status, row.reason));
    tr.appendChild(td(values(row.answer, row.rcode !== null)));
    tr.appendChild(td(opt(row.ttl), null, "TTL left"));
    tr.appendChild(td(ms(row.latency), "nowrap", "latency"));
    return tr;
  }

  function mirrorRow(m) {
    var tr = el("tr", "row-" + m.status);
    tr.setAttribute("data-mirror", m.mirror);
    var name = el("td", "name");
    name.textContent = m.mirror + " ";
    name.appendChild(el("small", null, m.kind));
    tr.appendChild(name);
    tr.appendChild(td(m.name + " " + m.type, "mono"));
    tr.appendChild(statusCell(m.status, m.state));
    tr.appendChild(td(m.provider === null ? el("em", null, "not seen yet") : values(m.provider, true), null, "provider has"));
    tr.appendChild(td(values(m.desired, true), null, "should be"));
    var reply = el("td", null, m.last_reply || "-");
    if (m.last_error) reply.appendChild(el("small", "error", m.last_error));
    tr.appendChild(reply);
    tr.appendChild(td(clock(m.last_attempt), "mono", "last attempt"));
    return tr;
  }

  function draw(view) {
    if (!document.getElementById("nameservers")) { // the page was served without rows (busy)
      window.location.reload();
      return;
    }
    var expected = document.getElementById("expected");
    if (expected) {
      var small = expected.querySelector("small");
      expected.textContent = "";
      expected.appendChild(values(view.expected.answer, true));
      if (small) {
        small.textContent = "TTL " + opt(view.expected.ttl) + " · zone " + view.zone + " serial ";
        small.appendChild(el("span", "mono", view.expected.serial));
        expected.appendChild(small);
      }
    }
    var summary = document.getElementById("summary");
    if (summary) {
      summary.textContent = "";
      ["in_sync", "stale", "error"].forEach(function (status) {
        summary.appendChild(badge(status));
        summary.appendChild(document.createTextNode(" "));
        summary.appendChild(el("b", null, view.summary[status]));
        summary.appendChild(document.createTextNode(" "));
      });
      var when = el("small", null, "checked ");
      when.appendChild(el("time", null, clock(view.checked_at)));
      when.appendChild(document.createTextNode(
        " UTC in " + view.duration.toFixed(1) + " s · each query waits at most " + view.timeout + " s"));
      summary.appendChild(when);
    }
    var warnings = document.getElementById("warnings");
    if (warnings) {
      warnings.textContent = "";
      view.warnings.forEach(function (w) { warnings.appendChild(el("p", "warning", w)); });
    }
    redraw("nameservers", view.nameservers, nameserverRow, "No nameservers found.");
    redraw("resolvers", view.resolvers, resolverRow, "No resolvers configured ([web] resolvers).");
    redraw("mirrors", view.mirrors, mirrorRow, null);
    root.removeAttribute("data-stale");
    root.setAttribute("data-refreshed", String(view.checked_at)); // when the rows were last redrawn
  }

  function schedule() {
    window.setTimeout(tick, EVERY);
  }

  function tick() {
    if (document.hidden) { schedule(); return; } // no queries for a tab nobody looks at
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(draw)
      .catch(function () { root.setAttribute("data-stale", "true"); })
      .then(schedule);
  }

  schedule();
})();
