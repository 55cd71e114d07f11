// On a phone the dashboard's tables become one card per row (web/dashboard.css);
// each cell then needs its column's name, copied here from the table head, for
// every table any page draws.
"use strict";

(() => {
  function label(table) {
    const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
    if (!heads.length) return;
    for (const tr of table.querySelectorAll("tbody tr")) {
      [...tr.children].forEach((td, i) => { if (heads[i] && !td.dataset.label) td.dataset.label = heads[i]; });
    }
  }
  const page = document.getElementById("page");
  new MutationObserver(() => page.querySelectorAll("table").forEach(label))
    .observe(page, { childList: true, subtree: true });
})();
