// Staff dashboard: login, live rooms grid, door events, tablets, audit log.
// Later features add pages with CoreSyncDashboard.register({id, label, render}).
"use strict";

const CoreSyncDashboard = (() => {
  const { api, liveSocket, el, describeState } = CoreSync;
  const $ = (id) => document.getElementById(id);
  const ROLES = ["staff", "manager", "admin"];
  const pages = {};
  let me = null;
  let rooms = {};
  let socket = null;
  let current = null;
  let showRevokedTablets = false; // revoked tablets are history: hidden unless asked

  function flash(text) {
    const box = $("flash");
    box.textContent = text;
    box.classList.remove("hidden");
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => box.classList.add("hidden"), 3500);
  }

  async function call(method, path, body) {
    try {
      return await api(method, path, body);
    } catch (err) {
      if (err.status === 401) { showLogin(); return null; }
      flash(`${err.code}: ${err.message}`);
      return null;
    }
  }

  function table(columns, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, columns.map(([label]) => el("th", {}, label)))),
      el("tbody", {}, rows.map((row) => el("tr", {}, columns.map(([, get]) => el("td", {}, get(row)))))));
  }

  // Status by icon and word, not colour alone.
  const AVAIL = { online: ["✓", "online"], offline: ["✕", "offline"], unknown: ["?", "unknown"] };
  function availability(state) {
    const [icon, word] = AVAIL[state] || AVAIL.unknown;
    return el("span", { class: "avail", "data-role": "avail" },
      el("span", { class: `dot ${state}`, "aria-hidden": "true" }),
      el("span", { class: `avail-text ${state}` }, `${icon} ${word}`));
  }

  // -- pages ------------------------------------------------------------------
  // "rooms" (the control panel) is registered by rooms-panel.js.
  // "doors" (door events) and "members" are registered by door.js and members.js.

  register({ id: "tablets", label: "Tablets", render: async (page) => {
    const data = await call("GET", "/api/v1/tablets");
    if (!data) return;
    const select = el("select", { id: "pair-room", "aria-label": "Room" },
      Object.values(rooms).map((r) => el("option", { value: r.room_id }, r.name)));
    const codeBox = el("div", { id: "pair-code", class: "code" });
    const create = el("button", { onclick: async () => {
      const res = await call("POST", `/api/v1/rooms/${select.value}/pairing-codes`);
      if (res) codeBox.textContent = `${res.code}  (valid ${Math.round(res.expires_in_s / 60)} min)`;
    } }, "Create pairing code");
    const showRevoked = el("input", { type: "checkbox", id: "show-revoked", checked: showRevokedTablets });
    showRevoked.addEventListener("change", () => { showRevokedTablets = showRevoked.checked; show("tablets"); });
    const revokedCount = data.tablets.filter((t) => t.revoked_at).length;
    const listed = showRevokedTablets ? data.tablets : data.tablets.filter((t) => !t.revoked_at);
    page.replaceChildren(el("h1", {}, "Tablets"),
      el("div", { class: "toolbar" }, select, create, codeBox),
      el("label", { class: "toolbar" }, showRevoked, ` Show revoked tablets (${revokedCount})`),
      table([
        ["Tablet", (t) => t.tablet_id], ["Room", (t) => t.room_id], ["Name", (t) => t.name || ""],
        ["Paired by", (t) => t.paired_by], ["Since", (t) => new Date(t.created_at).toLocaleString()],
        ["", (t) => t.revoked_at ? "revoked" : el("button", { class: "danger", onclick: async () => {
          if (await call("DELETE", `/api/v1/tablets/${t.tablet_id}`)) show("tablets");
        } }, "Revoke")],
      ], listed));
  } });

  register({ id: "audit", label: "Audit log", render: async (page) => {
    const data = await call("GET", "/api/v1/audit?limit=1000");
    if (!data) return;
    const columns = [
      ["When", (e) => new Date(e.ts).toLocaleString()], ["Who", (e) => e.actor],
      ["Action", (e) => e.action], ["Target", (e) => e.target || ""],
      ["Result", (e) => e.result], ["From", (e) => e.client_ip || ""],
    ];
    // Search the loaded entries: every word must appear in one of the columns.
    const search = el("input", { type: "search", id: "audit-search", placeholder: "Search who, action, target, result…",
      "aria-label": "Search the audit log" });
    const count = el("span", { class: "muted", "data-role": "count" });
    const holder = el("div", {});
    const refresh = () => {
      const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
      const rows = data.entries.filter((e) => {
        const text = columns.map(([, get]) => String(get(e))).join(" ").toLowerCase();
        return words.every((w) => text.includes(w));
      });
      count.textContent = `${rows.length} of ${data.entries.length} latest entries`;
      holder.replaceChildren(table(columns, rows));
    };
    search.addEventListener("input", refresh);
    page.replaceChildren(el("h1", {}, "Audit log"), el("div", { class: "toolbar" }, search, count), holder);
    refresh();
  } });

  // A page may also take live events: spec.onEvent(msg) while it is shown.
  function register(spec) {
    pages[spec.id] = spec;
    const link = document.querySelector(`#nav a[data-page="${spec.id}"]`);
    if (link) { link.classList.remove("soon"); link.removeAttribute("title"); }
  }

  async function show(id) {
    const spec = pages[id] || pages.rooms;
    current = spec.id;
    for (const link of document.querySelectorAll("#nav a")) {
      link.classList.toggle("active", link.dataset.page === spec.id);
    }
    await spec.render($("page"));
  }

  // -- live updates ---------------------------------------------------------------
  function onMessage(msg) {
    if (msg.type === "device_state") {
      const row = document.querySelector(`[data-device="${CSS.escape(msg.data.device_id)}"]`);
      if (!row) return;
      const room = rooms[msg.room_id];
      const local = msg.data.device_id.split("/")[1];
      const merged = { ...(room ? room.devices[local] : {}), ...msg.data };
      if (room) room.devices[local] = merged;
      row.querySelector('[data-role="state"]').textContent = describeState(merged);
      row.querySelector('[data-role="avail"]').replaceWith(availability(merged.availability));
    } else if (msg.type === "alert") {
      flash(`Alert: ${msg.data.message || msg.data.kind || "see door events"}`);
    }
    const spec = pages[current];
    if (spec && spec.onEvent) spec.onEvent(msg);
  }

  // -- session ---------------------------------------------------------------------
  function showLogin() {
    if (socket) { socket.close(); socket = null; }
    $("shell").classList.add("hidden");
    $("offline").classList.add("hidden");
    $("login").classList.remove("hidden");
  }

  async function enter() {
    me = await api("GET", "/api/v1/me").catch(() => null);
    if (!me || me.kind !== "staff") { showLogin(); return; }
    $("login").classList.add("hidden");
    $("shell").classList.remove("hidden");
    $("who").textContent = `${me.username} (${me.role})`;
    for (const link of document.querySelectorAll("#nav a[data-min-role]")) {
      link.classList.toggle("hidden", ROLES.indexOf(me.role) < ROLES.indexOf(link.dataset.minRole));
    }
    const roomData = await call("GET", "/api/v1/rooms");
    if (roomData) rooms = Object.fromEntries(roomData.rooms.map((r) => [r.room_id, r]));
    socket = liveSocket({ onMessage, onState: (up) => $("offline").classList.toggle("hidden", up) });
    await show((location.hash || "#rooms").slice(1));
  }

  $("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", "/api/v1/auth/login", { username: $("username").value, password: $("password").value });
      $("password").value = "";
      $("login-error").textContent = "";
      await enter();
    } catch (err) {
      $("login-error").textContent = err.message;
    }
  });
  $("logout").addEventListener("click", async () => { await call("POST", "/api/v1/auth/logout", {}); showLogin(); });
  window.addEventListener("hashchange", () => { if (me) show(location.hash.slice(1)); });

  enter();
  return { register, show, call, flash, table, availability, get current() { return current; } };
})();
