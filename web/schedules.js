// Schedules page of the staff dashboard: the scene schedules the controller
// runs by itself (config file and dashboard), their next run and recent runs;
// managers add, change and remove the dashboard's. Errors show next to the field.
"use strict";

(() => {
  const { api, el } = CoreSync;
  const dash = CoreSyncDashboard;
  const DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"];
  const TRIGGERS = [
    ["at", "At a time"],
    ["before_opening_min", "Minutes before opening"],
    ["after_closing_min", "Minutes after closing"],
  ];
  // In the spa's time zone, whatever the staff device's own is.
  let zone;
  const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { timeZone: zone }) : "—");

  function field(name, label, input) {
    return el("label", { class: "field", "data-field": name }, el("span", {}, label), input,
      el("span", { class: "field-error", "data-error-for": name, role: "alert" }));
  }

  function form(rooms, page, existing) {
    const spec = (existing && existing.spec) || {};
    const room = el("select", { name: "room" }, Object.values(rooms).map((r) =>
      el("option", { value: r.room_id, selected: r.room_id === spec.room }, r.name)));
    const scene = el("select", { name: "scene" });
    const fillScenes = () => {
      const r = rooms[room.value];
      scene.replaceChildren(...(r ? r.scenes : []).map((s) =>
        el("option", { value: s.id, selected: s.id === spec.scene }, s.name)));
    };
    room.addEventListener("change", fillScenes);
    fillScenes();
    const current = TRIGGERS.find(([key]) => spec[key] !== null && spec[key] !== undefined);
    const trigger = el("select", { name: "trigger" }, TRIGGERS.map(([key, label]) =>
      el("option", { value: key, selected: current && current[0] === key }, label)));
    const at = el("input", { name: "at", type: "time", value: spec.at || "07:00" });
    const minutes = el("input", { name: "minutes", type: "number", min: "0", max: "720",
      value: String(spec.before_opening_min ?? spec.after_closing_min ?? 30) });
    const atField = field("at", "Time", at);
    const minField = field("minutes", "Minutes", minutes);
    const showTrigger = () => {
      atField.classList.toggle("hidden", trigger.value !== "at");
      minField.classList.toggle("hidden", trigger.value === "at");
    };
    trigger.addEventListener("change", showTrigger);
    showTrigger();
    const days = el("fieldset", { class: "days" }, el("legend", {}, "Days"),
      DAYS.map((d) => el("label", {}, el("input", { type: "checkbox", name: "day", value: d,
        checked: !spec.days || spec.days.includes(d) }), d.slice(0, 3))));
    const id = el("input", { name: "id", required: true, pattern: "[a-z0-9][a-z0-9_-]*",
      value: (existing && existing.id) || "", readonly: !!existing });
    const enabled = el("input", { type: "checkbox", name: "enabled", checked: spec.enabled !== false });
    const box = el("form", { id: "schedule-form", class: "card schedule-form" },
      el("h2", {}, existing ? `Change ${existing.id}` : "New schedule"),
      field("id", "Id", id), field("room", "Room", room), field("scene", "Scene", scene),
      field("trigger", "When", trigger), atField, minField,
      days, el("span", { class: "field-error", "data-error-for": "days", role: "alert" }),
      field("enabled", "Enabled", enabled),
      el("div", { class: "toolbar" }, el("button", { type: "submit" }, "Save")));
    box.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      for (const e of box.querySelectorAll(".field-error")) e.textContent = "";
      const picked = [...box.querySelectorAll('input[name="day"]:checked')].map((i) => i.value);
      const body = { room: room.value, scene: scene.value, enabled: enabled.checked,
        days: picked.length === DAYS.length ? null : picked };
      if (trigger.value === "at") body.at = at.value;
      else body[trigger.value] = Number(minutes.value);
      try {
        await api("PUT", `/api/v1/schedules/${encodeURIComponent(id.value)}`, body);
        dash.flash(`Schedule ${id.value} saved`);
        await render(page);
      } catch (err) {
        const name = err.field === "before_opening_min" || err.field === "after_closing_min"
          ? "minutes" : err.field === "schedule_id" ? "id" : err.field;
        const slot = box.querySelector(`[data-error-for="${CSS.escape(name || "")}"]`)
          || box.querySelector('[data-error-for="id"]');
        slot.textContent = err.message;
      }
    });
    return box;
  }

  async function render(page) {
    const [data, me, roomData] = await Promise.all([
      dash.call("GET", "/api/v1/schedules"), dash.call("GET", "/api/v1/me"),
      dash.call("GET", "/api/v1/rooms")]);
    if (!data || !me || !roomData) return;
    zone = data.timezone;
    const rooms = Object.fromEntries(roomData.rooms.map((r) => [r.room_id, r]));
    const manager = me.role === "manager" || me.role === "admin";
    const rows = dash.table([
      ["Schedule", (s) => s.id],
      ["Runs", (s) => s.problem ? el("span", { class: "bad" }, `⚠ not run: ${s.problem}`)
        : `${s.describe}${s.spec.enabled ? "" : " (disabled)"}`],
      ["Next run", (s) => when(s.next_run)],
      ["From", (s) => s.source === "config" ? "config file" : `dashboard (${s.updated_by})`],
      ["", (s) => manager && s.source === "dashboard" ? el("span", {},
        el("button", { class: "secondary", "data-action": "edit",
          onclick: () => {
            const edit = form(rooms, page, s);
            page.querySelector("#schedule-form").replaceWith(edit);
            edit.querySelector("select").focus();
          } }, "Change"),
        el("button", { class: "danger", "data-action": "delete", onclick: async () => {
          if (await dash.call("DELETE", `/api/v1/schedules/${encodeURIComponent(s.id)}`)) render(page);
        } }, "Remove")) : ""],
    ], data.schedules);
    for (const [i, s] of data.schedules.entries()) rows.tBodies[0].rows[i].dataset.schedule = s.id;
    const recent = data.recent.length ? dash.table([
      ["Due", (r) => when(r.due)], ["Schedule", (r) => r.schedule_id],
      ["Scene", (r) => `${r.room_id}/${r.scene_id}`], ["Result", (r) => r.result],
      ["Detail", (r) => r.detail || ""],
    ], data.recent) : el("p", { class: "muted" }, "No runs since the controller started.");
    page.replaceChildren(
      el("h1", {}, "Schedules"),
      el("p", { class: "muted" }, `Times are in the spa's time zone (${data.timezone}). `
        + "Each run is logged as a command by “schedule”."),
      data.schedules.length ? rows : el("p", { class: "muted" }, "No schedules yet."),
      manager ? form(rooms, page, null) : null,
      el("h2", {}, "Recent runs"), recent);
  }

  dash.register({ id: "schedules", label: "Schedules", render,
    onEvent: (msg) => { if (msg.type === "schedule_run") render(document.getElementById("page")); } });
})();
