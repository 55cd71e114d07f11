// Sync page of the staff dashboard: is the spa in step with the cloud, and
// what needs a person (oversells, cancel-vs-pickup races, rejected changes).
"use strict";

(() => {
  const { el } = CoreSync;
  const dash = CoreSyncDashboard;

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");

  async function render(page) {
    const s = await dash.call("GET", "/api/v1/sync/status");
    if (!s) return;
    const head = el("h1", {}, "Sync");
    if (!s.enabled) {
      page.replaceChildren(head, el("p", { class: "muted", "data-role": "sync-off" },
        "This spa runs stand-alone: no [cloud] section in its config, so nothing syncs."));
      return;
    }
    const facts = [
      ["Cloud", s.cloud],
      ["Node", s.node_id],
      ["Last success", when(s.last_success)],
      ["Changes waiting to go up", String(s.queue_depth ?? "?")],
      ["Last error", s.last_error ? `${s.last_error} (${when(s.last_error_at)})` : "none"],
      ["Stock movements on hold", String(s.held_stock_movements ?? 0)],
      ["Spare order numbers", JSON.stringify(s.spare_numbers ?? {})],
    ];
    const items = s.attention || [];
    page.replaceChildren(
      head,
      el("div", { class: "card", "data-role": "sync-facts" },
        dash.table([["", (r) => r[0]], ["", (r) => r[1]]], facts)),
      el("h2", {}, `Needs attention (${items.length})`),
      items.length
        ? dash.table([
          ["Kind", (a) => a.kind],
          ["What", (a) => a.message || a.detail || ""],
          ["Since", (a) => when(a.created_at)],
        ], items)
        : el("p", { class: "muted" }, "Nothing needs attention."),
    );
  }

  dash.register({ id: "sync", label: "Sync", render });
})();
