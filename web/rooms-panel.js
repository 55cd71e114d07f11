// Rooms as a control panel: per-device controls within the device limits,
// the room's active scene, and a 24 h temperature and humidity chart drawn as
// plain SVG from the stored history. Replaces the status-board Rooms page; the
// live updates of dashboard.js keep working on the same data-device rows.
"use strict";

(() => {
  const { el, describeState } = CoreSync;
  const dash = CoreSyncDashboard;
  const SVG = "http://www.w3.org/2000/svg";
  const activeScene = {}; // room id -> scene id, from scene events and the command log
  let rooms = {}; // room id -> room, as last drawn, merged with live state

  const send = (roomId, deviceId, values) =>
    dash.call("POST", `/api/v1/rooms/${roomId}/devices/${deviceId}/command`, values);

  function controls(room, id, d) {
    const lim = d.limits || {};
    const s = d.state || {};
    if (d.kind === "light") {
      const toggle = el("button", { class: "secondary", "data-action": "toggle" }, s.on ? "Turn off" : "Turn on");
      toggle.addEventListener("click", () => send(room.room_id, id, { on: !s.on }));
      const range = el("input", { type: "range", min: lim.min_brightness ?? 0, max: lim.max_brightness ?? 100,
        value: s.brightness ?? lim.min_brightness ?? 0, "aria-label": `${d.name} brightness` });
      range.addEventListener("change", () => send(room.room_id, id, { on: true, brightness: Number(range.value) }));
      return el("div", { class: "device-controls" }, toggle, range);
    }
    if (d.kind === "climate") {
      const target = s.target_c ?? lim.min_target_c ?? 20;
      const clamp = (v) => Math.min(lim.max_target_c ?? 130, Math.max(lim.min_target_c ?? -10, v));
      const minus = el("button", { class: "secondary", "aria-label": `${d.name} cooler` }, "−");
      minus.addEventListener("click", () => send(room.room_id, id, { target_c: clamp(target - 0.5) }));
      const plus = el("button", { class: "secondary", "aria-label": `${d.name} warmer` }, "+");
      plus.addEventListener("click", () => send(room.room_id, id, { target_c: clamp(target + 0.5) }));
      const mode = el("select", { "aria-label": `${d.name} mode` },
        ["off", "heat", "cool", "auto"].map((m) => el("option", { value: m, selected: s.mode === m }, m)));
      mode.addEventListener("change", () => send(room.room_id, id, { mode: mode.value }));
      return el("div", { class: "device-controls" }, minus, el("span", {}, `${target} °C`), plus, mode);
    }
    return null; // locks: the Door page (reason, audit); sensors: read only
  }

  function chart(points) {
    const w = 320;
    const h = 90;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "history-chart");
    svg.setAttribute("role", "img");
    const times = points.map((p) => Date.parse(p.ts));
    const t0 = Math.min(...times);
    const t1 = Math.max(...times, t0 + 1);
    const lines = [];
    for (const [key, cls, unit] of [["temperature_c", "temp", "°C"], ["humidity", "hum", "%"]]) {
      const vals = points.map((p) => p[key]).filter((v) => v !== null && v !== undefined);
      if (vals.length < 2) continue;
      const lo = Math.min(...vals);
      const hi = Math.max(...vals, lo + 1);
      const path = points.filter((p) => p[key] !== null && p[key] !== undefined).map((p, i) => {
        const x = ((Date.parse(p.ts) - t0) / (t1 - t0)) * (w - 4) + 2;
        const y = h - 4 - ((p[key] - lo) / (hi - lo)) * (h - 8);
        return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      }).join(" ");
      const line = document.createElementNS(SVG, "path");
      line.setAttribute("d", path);
      line.setAttribute("class", `line ${cls}`);
      svg.append(line);
      lines.push(`${key === "humidity" ? "humidity" : "temperature"} ${lo.toFixed(1)}–${hi.toFixed(1)} ${unit}`);
    }
    svg.setAttribute("aria-label", `Last 24 h: ${lines.join("; ") || "no data"}`);
    return lines.length ? el("figure", { class: "history" }, svg, el("figcaption", { class: "muted small" }, `24 h: ${lines.join(" · ")}`)) : null;
  }

  function card(room, history) {
    const scene = activeScene[room.room_id];
    const sceneName = (room.scenes.find((s) => s.id === scene) || {}).name;
    return el("div", { class: "card room-panel", "data-room": room.room_id },
      el("h2", {}, room.name),
      el("div", { class: "muted small", "data-role": "active-scene" }, sceneName ? `Active scene: ${sceneName}` : "No scene run yet"),
      Object.entries(room.devices).map(([id, d]) => el("div", { class: "device-block" },
        el("div", { class: "device", "data-device": d.device_id },
          el("span", {}, dash.availability(d.availability), " ", d.name || id),
          el("span", { class: "muted", "data-role": "state" }, describeState(d))),
        el("div", { "data-controls-for": d.device_id }, controls(room, id, d)),
        history && history[id] && history[id].length > 1 ? chart(history[id]) : null)),
      el("div", { class: "scenes" }, room.scenes.map((s) => {
        const b = el("button", { class: s.id === scene ? "" : "secondary", "data-scene": s.id }, s.name);
        b.addEventListener("click", async () => {
          const result = await dash.call("POST", `/api/v1/rooms/${room.room_id}/scenes/${s.id}/activate`);
          if (result) dash.flash(`${room.name}: ${s.name} done`);
        });
        return b;
      })));
  }

  async function render(page) {
    const [data, log] = await Promise.all([
      dash.call("GET", "/api/v1/rooms"), dash.call("GET", "/api/v1/commands?limit=500")]);
    if (!data) return;
    rooms = Object.fromEntries(data.rooms.map((r) => [r.room_id, r]));
    for (const row of [...((log && log.commands) || [])].reverse()) {
      if (row.scene_id) activeScene[row.device_id.split("/")[0]] = row.scene_id;
    }
    const histories = await Promise.all(data.rooms.map((r) =>
      dash.call("GET", `/api/v1/rooms/${r.room_id}/history?hours=24`)));
    page.replaceChildren(el("h1", {}, "Rooms"), el("div", { class: "grid rooms-grid" },
      data.rooms.map((r, i) => card(r, histories[i] ? histories[i].devices : null))));
  }

  // Live: the state text and status icon are updated by dashboard.js; the
  // controls of the device that changed are redrawn here (not while staff are
  // using one), and the active scene follows scene events.
  function onEvent(msg) {
    if (msg.type === "scene") {
      activeScene[msg.room_id] = msg.data.scene_id;
      const room = rooms[msg.room_id];
      const line = document.querySelector(`[data-room="${CSS.escape(msg.room_id)}"] [data-role="active-scene"]`);
      const scene = room && room.scenes.find((s) => s.id === msg.data.scene_id);
      if (line && scene) line.textContent = `Active scene: ${scene.name}`;
      for (const b of document.querySelectorAll(`[data-room="${CSS.escape(msg.room_id)}"] [data-scene]`)) {
        b.className = b.dataset.scene === msg.data.scene_id ? "" : "secondary";
      }
    } else if (msg.type === "device_state") {
      const room = rooms[msg.room_id];
      const local = msg.data.device_id.split("/")[1];
      if (!room || !room.devices[local]) return;
      room.devices[local] = { ...room.devices[local], ...msg.data };
      const holder = document.querySelector(`[data-controls-for="${CSS.escape(msg.data.device_id)}"]`);
      const editing = holder && holder.contains(document.activeElement) && document.activeElement.matches("input, select");
      if (holder && !editing) {
        holder.replaceChildren(...[controls(room, local, room.devices[local])].filter(Boolean));
      }
    }
  }

  dash.register({ id: "rooms", label: "Rooms", render, onEvent });
})();
