// Shop pages of the staff dashboard: the pickup queue with counter orders, the
// concierge queue and the low-stock list.  They refresh on "shop" events.
"use strict";

(() => {
  const { api, el } = CoreSync;
  const dash = CoreSyncDashboard;
  const SHOP = "/api/v1/shop";
  const TYPES = {
    premium_alcohol: "Premium alcohol", fresh_flowers: "Fresh flowers", gourmet_food: "Gourmet food",
    jewelry_accessories: "Jewelry & accessories", luxury_items: "Luxury item", gift_items: "Gift",
    other: "Other",
  };

  // Money travels as decimal strings; sums are done in whole cents.
  const cents = (text) => Math.round(parseFloat(text) * 100);
  const money = (c) => "$" + (c / 100).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const usd = (text) => (text === null || text === undefined ? "—" : money(cents(text)));
  const day = (iso) => (iso ? new Date(iso + "T12:00:00").toLocaleDateString(undefined, { weekday: "short", month: "short", day: "numeric" }) : "");
  const badge = (text, kind = "") => el("span", { class: `badge ${kind}` }, text);

  // Statuses, their next steps and what can be cancelled come from the server
  // (edge.shop.statuses via GET /api/v1/shop/rules); only the words are here.
  let RULES = null;
  async function shopRules() {
    RULES = RULES || await dash.call("GET", `${SHOP}/rules`);
    return RULES;
  }

  function closedTable(columns, rows, none) {
    return rows.length ? dash.table(columns, rows) : el("p", { class: "muted" }, none);
  }

  function button(label, action, onclick, cls = "") {
    return el("button", { type: "button", class: cls, "data-action": action, onclick }, label);
  }

  // An action that needs a second click (or a value) shows its own small form in place.
  function inlineForm(host, { label, placeholder, type = "text", confirmLabel, danger, submit }) {
    const input = placeholder ? el("input", { type, placeholder, "aria-label": placeholder, step: type === "number" ? "0.01" : null, min: type === "number" ? "0" : null }) : null;
    const go = button(confirmLabel, "confirm", async () => {
      go.disabled = true;
      const ok = await submit(input ? input.value.trim() : undefined);
      if (!ok) go.disabled = false;
    }, danger ? "danger" : "");
    const back = button("Keep", "back", () => {
      host.classList.remove("editing");
      host.replaceChildren(...host.saved);
    }, "secondary");
    host.saved = [...host.childNodes];
    host.classList.add("editing");
    host.replaceChildren(el("span", { class: "muted" }, label), input, go, back);
    if (input) input.focus();
  }

  // Re-render a queue after "shop" events, at most a few times a second, and
  // never under a half-typed inline form (it waits for it to close).
  function liveRefresh(refresh) {
    let timer = null;
    const busy = () => document.querySelector(".actions.editing");
    const later = () => {
      clearTimeout(timer);
      timer = setTimeout(() => (busy() ? later() : refresh()), busy() ? 1000 : 150);
    };
    return (msg) => { if (msg.type === "shop") later(); };
  }

  // -- pickups -------------------------------------------------------------------
  const ORDER_LABELS = { pending: "New", processing: "Being prepared", ready: "Ready for pickup" };
  const ORDER_STEPS = { processing: "Start preparing", ready: "Mark ready", completed: "Hand over" };

  async function orderAction(order, path, body) {
    const done = await dash.call("POST", `${SHOP}/orders/${order.id}/${path}`, body);
    if (done) { dash.flash(`${done.number}: ${done.status}`); refreshPickups(); }
    return Boolean(done);
  }

  function orderCard(order) {
    const actions = el("div", { class: "actions" });
    const next = RULES.order.next[order.status];
    if (next) actions.append(button(ORDER_STEPS[next] || next, next, () => orderAction(order, "status", { status: next })));
    if (!order.paid_at) {
      actions.append(button("Payment", "payment", () => inlineForm(actions, {
        label: "Ref", placeholder: "Payment reference", confirmLabel: "Save",
        submit: (ref) => orderAction(order, "payment", { payment_ref: ref }),
      }), "secondary"));
    }
    if (RULES.order.cancellable.includes(order.status)) {
      actions.append(button("Cancel", "cancel", () => inlineForm(actions, {
        label: "Cancel this order and put the stock back?", confirmLabel: "Yes, cancel", danger: true,
        submit: () => orderAction(order, "cancel"),
      }), "secondary"));
    }
    return el("article", { class: "card order", "data-order": order.number, "data-status": order.status },
      el("header", {}, el("strong", {}, order.number), order.paid_at ? badge("Paid", "ok") : badge("Unpaid", "warn")),
      el("div", { class: "who-line" }, order.member_name, " ", badge(order.member_tier)),
      el("ul", { class: "lines" }, order.items.map((i) => el("li", {}, el("span", {}, `${i.quantity} × ${i.product_name}`), el("span", {}, usd(i.line_total))))),
      el("div", { class: "total" }, el("span", { class: "muted" }, order.pickup_date ? `Pickup ${day(order.pickup_date)}` : "Pickup any day"), el("strong", {}, usd(order.total))),
      order.customer_notes ? el("p", { class: "note" }, order.customer_notes) : null,
      actions);
  }

  async function refreshPickups() {
    const host = document.getElementById("pickup-queue");
    if (!host) return;
    if (!await shopRules()) return;
    const columns = RULES.order.open.map((s) => [s, ORDER_LABELS[s] || s]);
    const [open, closed] = await Promise.all([
      Promise.all(columns.map(([s]) => dash.call("GET", `${SHOP}/orders?status=${s}&page_size=100`))),
      dash.call("GET", `${SHOP}/orders?page_size=30`),
    ]);
    if (open.some((page) => !page) || !closed) return;
    host.replaceChildren(
      el("div", { class: "board" }, columns.map(([status, label], i) => el("section", { class: "column", "data-column": status },
        el("h2", {}, label, " ", el("span", { class: "count" }, open[i].total)),
        open[i].items.length ? open[i].items.map(orderCard) : el("p", { class: "muted empty" }, "Nothing here")))),
      el("h2", { class: "section" }, "Recently closed"),
      closedTable([
        ["Order", (o) => o.number], ["Member", (o) => o.member_name], ["Status", (o) => badge(o.status, o.status === "cancelled" ? "bad" : "ok")],
        ["Total", (o) => usd(o.total)], ["Payment", (o) => o.payment_ref || "—"], ["Updated", (o) => new Date(o.updated_at).toLocaleString()],
      ], closed.items.filter((o) => RULES.order.closed.includes(o.status)).slice(0, 12),
      "No completed or cancelled orders yet."));
  }

  async function counterForm(overview) {
    const [memberList, products] = await Promise.all([
      dash.call("GET", `${SHOP}/members?active=true&limit=200`),
      dash.call("GET", `${SHOP}/products?page_size=100`),
    ]);
    if (!memberList || !products) return el("div");
    const rate = parseFloat(overview.tax_rate);
    const bySlug = Object.fromEntries(products.items.map((p) => [p.slug, p]));
    const memberSelect = el("select", { id: "order-member", "aria-label": "Member", required: true },
      el("option", { value: "" }, "Choose a member…"),
      memberList.items.map((m) => el("option", { value: m.id, "data-active": String(m.active) }, `${m.name} · ${m.tier}`)));
    const memberSearch = el("input", { id: "member-search", type: "search", placeholder: "Search members", "aria-label": "Search members" });
    memberSearch.addEventListener("input", () => {
      const needle = memberSearch.value.toLowerCase();
      for (const opt of memberSelect.options) if (opt.value) opt.hidden = !opt.textContent.toLowerCase().includes(needle);
    });
    const lines = el("div", { class: "order-lines" });
    const totals = el("div", { class: "totals", id: "order-totals" });
    const error = el("div", { class: "form-error", role: "alert" });
    const pickup = el("input", { id: "order-pickup", type: "date", "aria-label": "Pickup date" });
    const notes = el("input", { id: "order-notes", placeholder: "Customer notes (optional)", "aria-label": "Customer notes" });

    const memberActive = () => {
      const opt = memberSelect.selectedOptions[0];
      return Boolean(opt && opt.dataset.active === "true");
    };
    const unitCents = (p) => (memberActive() && p.member_price !== null ? cents(p.member_price) : cents(p.price));

    function update() {
      let subtotal = 0;
      for (const row of lines.children) {
        const p = bySlug[row.querySelector("select").value];
        const qty = parseInt(row.querySelector("input").value, 10) || 0;
        const unit = p ? unitCents(p) : 0;
        row.querySelector(".unit").textContent = p ? `${money(unit)} each${memberActive() && p.member_price !== null ? " (member)" : ""}` : "";
        row.querySelector(".line-total").textContent = p ? money(unit * qty) : "";
        subtotal += unit * qty;
      }
      const tax = Math.round(subtotal * rate + 1e-9);
      totals.replaceChildren(
        el("span", {}, "Subtotal ", el("strong", {}, money(subtotal))),
        el("span", {}, `Tax ${(rate * 100).toFixed(1)} % `, el("strong", {}, money(tax))),
        el("span", { class: "grand" }, "Total ", el("strong", { id: "order-total" }, money(subtotal + tax))));
    }

    function addLine() {
      const product = el("select", { class: "line-product", "aria-label": "Product" },
        el("option", { value: "" }, "Product…"),
        products.items.map((p) => el("option", { value: p.slug, disabled: !p.in_stock },
          `${p.name} — ${usd(p.price)}${p.member_price ? ` / members ${usd(p.member_price)}` : ""}${p.in_stock ? ` · ${p.stock} left` : " · sold out"}`)));
      const qty = el("input", { class: "line-qty", type: "number", min: "1", value: "1", "aria-label": "Quantity" });
      const row = el("div", { class: "order-line" }, product, qty, el("span", { class: "unit muted" }), el("span", { class: "line-total" }),
        button("✕", "remove-line", () => { row.remove(); update(); }, "secondary icon"));
      product.addEventListener("change", update);
      qty.addEventListener("input", update);
      lines.append(row);
      update();
    }
    memberSelect.addEventListener("change", update);
    addLine();

    const form = el("form", { id: "counter-order", class: "card counter hidden" },
      el("h2", {}, "New counter order"),
      el("div", { class: "row" }, memberSearch, memberSelect),
      lines,
      el("div", { class: "row" }, button("Add line", "add-line", addLine, "secondary"), el("label", { class: "muted" }, "Pickup ", pickup), notes),
      totals, error,
      el("div", { class: "row" }, el("button", { type: "submit" }, "Create order"),
        button("Close", "close", () => form.classList.add("hidden"), "secondary")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const items = [...lines.children].map((row) => ({
        product: row.querySelector("select").value,
        quantity: parseInt(row.querySelector("input").value, 10),
      })).filter((i) => i.product);
      const body = { member_id: memberSelect.value, items };
      if (pickup.value) body.pickup_date = pickup.value;
      if (notes.value.trim()) body.customer_notes = notes.value.trim();
      try {
        const order = await api("POST", `${SHOP}/orders`, body);
        dash.flash(`${order.number} created · ${usd(order.total)}`);
        lines.replaceChildren();
        addLine();
        form.classList.add("hidden");
        refreshPickups();
      } catch (err) {
        error.textContent = err.field ? `${err.field}: ${err.message.replace(`${err.field}: `, "")}` : err.message;
      }
    });
    return form;
  }

  dash.register({
    id: "pickups", label: "Pickups",
    render: async (page) => {
      const overview = await dash.call("GET", `${SHOP}/overview`);
      if (!overview) return;
      const form = await counterForm(overview);
      page.replaceChildren(
        el("div", { class: "page-head" }, el("h1", {}, "Pickups"),
          button("New counter order", "new-order", () => { form.classList.remove("hidden"); form.querySelector("#member-search").focus(); })),
        form, el("div", { id: "pickup-queue" }));
      await refreshPickups();
    },
    onEvent: liveRefresh(refreshPickups),
  });

  // -- concierge -----------------------------------------------------------------------
  const REQUEST_LABELS = { pending: "To review", approved: "Approved", processing: "Sourcing", ready: "Ready for pickup" };
  const REQUEST_STEPS = { processing: "Start sourcing", ready: "Mark ready", completed: "Hand over" };

  async function requestAction(req, path, body) {
    const done = await dash.call("POST", `${SHOP}/concierge/requests/${req.id}/${path}`, body);
    if (done) { dash.flash(`${done.number}: ${done.status}`); refreshConcierge(); }
    return Boolean(done);
  }

  function daysUntil(iso) {
    const today = new Date(); today.setHours(0, 0, 0, 0);
    return Math.round((new Date(iso + "T00:00:00") - today) / 86400000);
  }

  function requestCard(req) {
    const alcohol = req.request_type === "premium_alcohol";
    const actions = el("div", { class: "actions" });
    if (req.status === "pending") {
      actions.append(
        button("Approve", "approve", () => requestAction(req, "approve", {})),
        button("Decline", "decline", () => inlineForm(actions, {
          label: "Reason", placeholder: "Reason told to the member", confirmLabel: "Decline", danger: true,
          submit: (reason) => requestAction(req, "decline", { reason }),
        }), "secondary"));
    }
    const next = RULES.request.next[req.status];
    if (next) {
      actions.append(button(req.actual_cost === null ? "Set cost" : "Change cost", "cost", () => inlineForm(actions, {
        label: "Actual cost $", placeholder: "0.00", type: "number", confirmLabel: "Save",
        submit: (cost) => requestAction(req, "cost", { actual_cost: cost }),
      }), "secondary"));
      if (alcohol && !req.age_verified_at) actions.append(button("Verify age", "verify-age", () => requestAction(req, "verify-age"), "secondary"));
      const blocked = next === "completed" && alcohol && !req.age_verified_at;
      actions.append(el("button", { type: "button", "data-action": next, disabled: blocked, title: blocked ? "Verify the member's age first" : null, onclick: () => requestAction(req, "status", { status: next }) }, REQUEST_STEPS[next] || next));
    }
    if (RULES.request.cancellable.includes(req.status)) {
      actions.append(button("Cancel", "cancel", () => inlineForm(actions, {
        label: "Cancel this request?", confirmLabel: "Yes, cancel", danger: true,
        submit: () => requestAction(req, "cancel"),
      }), "secondary"));
    }
    const days = daysUntil(req.preferred_pickup_date);
    const cost = req.actual_cost === null ? el("span", { class: "muted" }, "no cost yet")
      : el("span", {}, usd(req.actual_cost), " ", req.within_budget ? badge("within budget", "ok") : badge("over budget", "bad"));
    return el("article", { class: "card request", "data-request": req.number, "data-status": req.status },
      el("header", {}, el("strong", {}, req.number), badge(TYPES[req.request_type] || req.request_type, alcohol ? "alcohol" : "")),
      el("h3", {}, req.title),
      el("div", { class: "who-line" }, req.member_name, " ", badge(req.member_tier)),
      el("p", { class: "note" }, req.description),
      el("dl", {},
        el("dt", {}, "Budget"), el("dd", {}, `${usd(req.budget_min)} – ${usd(req.budget_max)}`),
        el("dt", {}, "Cost"), el("dd", {}, cost),
        el("dt", {}, "Pickup"), el("dd", {}, day(req.preferred_pickup_date), " ",
          el("span", { class: days < 0 ? "late" : "muted" }, days === 0 ? "(today)" : days > 0 ? `(in ${days} d)` : `(${-days} d late)`)),
        alcohol ? el("dt", {}, "ID check") : null,
        alcohol ? el("dd", {}, req.age_verified_at ? badge(`verified · ${String(req.age_verified_by).replace(/^staff:/, "")}`, "ok") : badge("needed before hand-over", "warn")) : null),
      req.product_link ? el("a", { href: req.product_link, target: "_blank", rel: "noopener noreferrer" }, "Product link") : null,
      actions);
  }

  async function refreshConcierge() {
    const host = document.getElementById("concierge-queue");
    if (!host) return;
    if (!await shopRules()) return;
    const columns = RULES.request.open.map((s) => [s, REQUEST_LABELS[s] || s]);
    const pages = await Promise.all([
      ...columns.map(([s]) => dash.call("GET", `${SHOP}/concierge/requests?status=${s}&page_size=100`)),
      dash.call("GET", `${SHOP}/concierge/requests?page_size=30`),
    ]);
    if (pages.some((page) => !page)) return;
    const closed = pages.pop().items.filter((r) => RULES.request.closed.includes(r.status));
    host.replaceChildren(
      el("div", { class: "board four" }, columns.map(([status, label], i) => el("section", { class: "column", "data-column": status },
        el("h2", {}, label, " ", el("span", { class: "count" }, pages[i].total)),
        pages[i].items.length ? pages[i].items.map(requestCard) : el("p", { class: "muted empty" }, "Nothing here")))),
      el("h2", { class: "section" }, "Recently closed"),
      closedTable([
        ["Request", (r) => r.number], ["Title", (r) => r.title], ["Member", (r) => r.member_name],
        ["Status", (r) => badge(r.status, r.status === "completed" ? "ok" : "bad")],
        ["Cost", (r) => usd(r.actual_cost)], ["Note", (r) => r.decline_reason || ""],
      ], closed.slice(0, 12), "No completed, declined or cancelled requests yet."));
  }

  dash.register({
    id: "concierge", label: "Concierge",
    render: async (page) => {
      page.replaceChildren(el("div", { class: "page-head" }, el("h1", {}, "Concierge"),
        el("span", { class: "muted" }, "Review new requests within 24 hours")), el("div", { id: "concierge-queue" }));
      await refreshConcierge();
    },
    onEvent: liveRefresh(refreshConcierge),
  });

  // -- low stock -------------------------------------------------------------------------
  async function refreshLowStock() {
    const host = document.getElementById("low-stock-list");
    if (!host) return;
    const data = await dash.call("GET", `${SHOP}/products/low-stock`);
    if (!data) return;
    host.replaceChildren(data.items.length ? dash.table([
      ["Product", (p) => p.name], ["Category", (p) => p.category.replace("_", " ")],
      ["In stock", (p) => String(p.stock)], ["Reorder at", (p) => String(p.low_stock_threshold)],
      ["", (p) => (p.in_stock ? badge("Low", "warn") : badge("Sold out", "bad"))],
    ], data.items) : el("p", { class: "muted" }, "Every product is above its low-stock level."));
  }

  dash.register({
    id: "low-stock", label: "Low stock",
    render: async (page) => {
      page.replaceChildren(el("h1", {}, "Low stock"), el("div", { id: "low-stock-list" }));
      await refreshLowStock();
    },
    onEvent: liveRefresh(refreshLowStock),
  });
})();
