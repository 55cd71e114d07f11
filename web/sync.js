// Sync page of the staff dashboard: is the spa in step with the cloud, and
// what needs a person (oversells, cancel-vs-pickup races, rejected changes).
// An oversell is fixed here in one step: restock, cancel an order, give a
// substitute (its stock moves down, the short product's up) or acknowledge — and it is resolved with that (docs/sync.md).
"use strict";

(() => {
  const { el } = CoreSync;
  const dash = CoreSyncDashboard;

  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "never");
  const OVERSELL = ["oversell", "oversell_held"];
  const ACTIONS = [
    ["restock", "Restock (units arrived)"],
    ["cancel_order", "Cancel an order"],
    ["substitute", "Gave a substitute"],
    ["acknowledge", "Acknowledge"],
  ];

  // One form per oversell: the action, its one field, and Resolve.
  function resolveForm(item, page) {
    const id = `resolve-${item.id}`;
    const action = el("select", { id: `${id}-action`, "data-role": "resolve-action" },
      ACTIONS.map(([value, label]) => el("option", { value }, label)));
    const quantity = el("input", { id: `${id}-quantity`, type: "number", min: "1", step: "1",
      value: String(item.data?.short || 1), "data-role": "resolve-quantity" });
    const order = el("input", { id: `${id}-order`, value: item.data?.order_id || "",
      "data-role": "resolve-order" });
    const note = el("input", { id: `${id}-note`, maxlength: "500", "data-role": "resolve-note" });
    const given = el("input", { id: `${id}-given`, maxlength: "64", required: true,
      "data-role": "resolve-substitute" });
    const givenUnits = el("input", { id: `${id}-given-units`, type: "number", min: "1",
      step: "1", value: String(item.data?.short || 1), "data-role": "resolve-given-units" });
    const fields = {
      restock: el("label", { for: quantity.id }, "Units ", quantity),
      cancel_order: el("label", { for: order.id }, "Order id ", order),
      substitute: el("span", {},
        el("label", { for: given.id }, "Product given (slug) ", given),
        el("label", { for: givenUnits.id }, " Units ", givenUnits),
        el("label", { for: note.id }, " Note ", note)),
    };
    const slot = el("span", { class: "resolve-field" });
    const pick = () => slot.replaceChildren(fields[action.value] || "");
    action.addEventListener("change", pick);
    pick();
    const submit = el("button", { type: "submit", "data-role": "resolve" }, "Resolve");
    const form = el("form", { class: "resolve", "data-item": String(item.id) },
      el("label", { for: action.id }, "Fix "), action, slot, submit);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { action: action.value };
      if (action.value === "restock") body.quantity = Number(quantity.value);
      if (action.value === "cancel_order") body.order_id = order.value.trim();
      if (action.value === "substitute") {
        body.substitute_slug = given.value.trim();
        body.quantity = Number(givenUnits.value);
        if (note.value.trim()) body.note = note.value.trim();
      }
      submit.disabled = true;
      const done = await dash.call("POST", `/api/v1/sync/attention/${item.id}/resolve`, body);
      submit.disabled = false;
      if (done) { dash.flash("Resolved"); await render(page); }
    });
    return form;
  }

  function itemCard(item, page) {
    return el("li", { class: "card", "data-role": "attention-item", "data-kind": item.kind },
      el("strong", {}, item.kind), " · ", el("span", {}, when(item.created_at)),
      el("p", {}, item.message || item.detail || ""),
      OVERSELL.includes(item.kind) ? resolveForm(item, page) : null);
  }

  async function render(page) {
    const s = await dash.call("GET", "/api/v1/sync/status");
    if (!s) return;
    const head = el("h1", {}, "Sync");
    const items = s.attention || [];
    const list = [
      el("h2", {}, `Needs attention (${items.length})`),
      items.length
        ? el("ul", { class: "attention", "data-role": "attention" },
          items.map((a) => itemCard(a, page)))
        : el("p", { class: "muted" }, "Nothing needs attention."),
    ];
    if (!s.enabled) {
      // Items raised before sync was turned off stay until staff resolve them.
      page.replaceChildren(head, el("p", { class: "muted", "data-role": "sync-off" },
        "This spa runs stand-alone: no [cloud] section in its config, so nothing syncs."),
        ...list);
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
    page.replaceChildren(
      head,
      el("div", { class: "card", "data-role": "sync-facts" },
        dash.table([["", (r) => r[0]], ["", (r) => r[1]]], facts)),
      ...list,
    );
  }

  dash.register({ id: "sync", label: "Sync", render });
})();
