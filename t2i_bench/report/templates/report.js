// t2i-bench report: sort and filter the leaderboard. Reads only data-v attributes and
// textContent; it never writes markup, so no data can become code.
"use strict";

(function () {
  /** The value a cell sorts on: a number, lower-case text, or null when empty. */
  function sortValue(cell) {
    const raw = cell.dataset.v;
    if (raw === undefined || raw === "") {
      return null;
    }
    const number = Number(raw);
    return Number.isNaN(number) ? raw.toLowerCase() : number;
  }

  /** Ascending order of two sort values; numbers before text. */
  function compareValues(a, b) {
    if (typeof a === typeof b) {
      return a < b ? -1 : a > b ? 1 : 0;
    }
    return typeof a === "number" ? -1 : 1;
  }

  /** Sort the table's rows by one column; empty cells always last. */
  function sortRows(table, index, descending) {
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort(function (r1, r2) {
      const a = sortValue(r1.cells[index]);
      const b = sortValue(r2.cells[index]);
      if (a === null || b === null) {
        return (a === null) - (b === null);
      }
      const order = compareValues(a, b);
      return descending ? -order : order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
  }

  /** Header click: ascending first, then toggle. */
  function onHeaderClick(table, header, index) {
    const descending = header.getAttribute("aria-sort") === "ascending";
    table.querySelectorAll("thead tr.cols th").forEach(function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
    sortRows(table, index, descending);
  }

  /** Hide rows whose text does not contain the query; update the counter. */
  function filterRows(table, query, counter) {
    const needle = query.trim().toLowerCase();
    const rows = Array.from(table.tBodies[0].rows);
    let shown = 0;
    rows.forEach(function (row) {
      const match = needle === "" || row.textContent.toLowerCase().includes(needle);
      row.hidden = !match;
      shown += match ? 1 : 0;
    });
    counter.textContent = shown + " of " + rows.length + " checkpoints";
  }

  function setUp() {
    const table = document.getElementById("lb");
    if (!table) {
      return;
    }
    table.querySelectorAll("thead tr.cols th").forEach(function (header, index) {
      header.querySelector("button").addEventListener("click", function () {
        onHeaderClick(table, header, index);
      });
    });
    const input = document.getElementById("lb-filter");
    const counter = document.getElementById("lb-count");
    input.addEventListener("input", function () {
      filterRows(table, input.value, counter);
    });
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
