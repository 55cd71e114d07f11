// Room tablet: pairing, scene buttons, light and climate controls bounded by
// the device limits from the API, live state over the WebSocket.
"use strict";

(() => {
  const { api, liveSocket, el } = CoreSync;
  const $ = (id) => document.getElementById(id);
  const store = window.localStorage;
  let room = null;
  let socket = null;

  function showError(message) {
    $("error").textContent = message;
    $("error").classList.toggle("hidden", !message);
  }

  function token() { return store.getItem("coresync.tablet.token"); }

  function forget() {
    store.removeItem("coresync.tablet.token");
    store.removeItem("coresync.tablet.room");
    if (socket) socket.close();
    showPairing();
  }

  function showPairing() {
    $("room").classList.add("hidden");
    $("pairing").classList.remove("hidden");
    $("code").focus();
  }

  $("pairing").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const paired = await api("POST", "/api/v1/tablets/pair", { code: $("code").value, name: navigator.userAgent.slice(0, 60) });
      store.setItem("coresync.tablet.token", paired.token);
      store.setItem("coresync.tablet.room", paired.room_id);
      showError("");
      await start();
    } catch (err) {
      showError(err.code === "invalid_field" ? "That code is not valid (used or expired)." : err.message);
    }
  });

  async function call(method, path, body) {
    try {
      const result = await api(method, path, body, token());
      showError("");
      return result;
    } catch (err) {
      if (err.status === 401) { forget(); return null; }
      showError(err.message);
      return null;
    }
  }

  // CIE xy (what lights report) to the brightest sRGB of that colour, #rrggbb.
  function xyToHex(x, y) {
    if (!(y > 0)) return "#000000";
    const X = x / y, Z = (1 - x - y) / y;
    const lin = [X * 3.2406 - 1.5372 - Z * 0.4986, -X * 0.9689 + 1.8758 + Z * 0.0415, X * 0.0557 - 0.2040 + Z * 1.0570];
    const gam = lin.map((v) => { v = Math.max(0, v); return v <= 0.0031308 ? 12.92 * v : 1.055 * v ** (1 / 2.4) - 0.055; });
    const top = Math.max(...gam) || 1;
    return "#" + gam.map((v) => Math.round(255 * v / top).toString(16).padStart(2, "0")).join("");
  }

  function lightControl(id, dev) {
    const lim = dev.limits;
    const value = el("span", { class: "value", "data-role": "value" });
    const slider = el("input", {
      type: "range", min: lim.min_brightness, max: lim.max_brightness, step: 1,
      "aria-label": `${dev.name} brightness`, "data-device": id,
      onchange: (ev) => call("POST", `/api/v1/rooms/${room.room_id}/devices/${id}/command`, { on: true, brightness: Number(ev.target.value) }),
    });
    const toggle = el("button", {
      class: "big secondary", "data-role": "toggle",
      onclick: () => call("POST", `/api/v1/rooms/${room.room_id}/devices/${id}/command`, { on: !(dev.state && dev.state.on) }),
    }, "On");
    // Colour (chromotherapy): a picker unless the light is kept to white.
    const colour = lim.allow_color === false ? null : el("input", {
      type: "color", "aria-label": `${dev.name} colour`, "data-role": "color",
      onchange: (ev) => call("POST", `/api/v1/rooms/${room.room_id}/devices/${id}/command`, { on: true, color: ev.target.value }),
    });
    const card = el("div", { class: "control", "data-device": id },
      el("h3", {}, dev.name, el("span", { class: "muted", "data-role": "avail" })),
      el("div", { class: "row" }, value, toggle),
      slider, ...(colour ? [colour] : []));
    card.update = (d) => {
      dev = d;
      const s = d.state || {};
      if (colour && Array.isArray(s.color_xy) && document.activeElement !== colour) {
        colour.value = xyToHex(s.color_xy[0], s.color_xy[1]);
      }
      value.textContent = s.on ? `${s.brightness ?? "?"} %` : "Off";
      toggle.textContent = s.on ? "Turn off" : "Turn on";
      if (typeof s.brightness === "number" && document.activeElement !== slider) {
        slider.value = Math.min(lim.max_brightness, Math.max(lim.min_brightness, s.brightness));
      }
      card.querySelector('[data-role="avail"]').textContent = d.availability === "online" ? "" : d.availability;
    };
    return card;
  }

  function climateControl(id, dev) {
    const lim = dev.limits;
    const value = el("span", { class: "value", "data-role": "value" });
    const step = (delta) => {
      const current = (dev.state && dev.state.target_c) ?? (lim.min_target_c + lim.max_target_c) / 2;
      const target = Math.min(lim.max_target_c, Math.max(lim.min_target_c, Math.round((current + delta) * 2) / 2));
      call("POST", `/api/v1/rooms/${room.room_id}/devices/${id}/command`, { target_c: target });
    };
    const minus = el("button", { class: "big secondary", "aria-label": "cooler", onclick: () => step(-0.5) }, "−");
    const plus = el("button", { class: "big secondary", "aria-label": "warmer", onclick: () => step(0.5) }, "+");
    const now = el("div", { class: "muted" });
    const card = el("div", { class: "control", "data-device": id },
      el("h3", {}, dev.name, el("span", { class: "muted" }, `${lim.min_target_c}–${lim.max_target_c} °C`)),
      el("div", { class: "row" }, minus, value, plus), now);
    card.update = (d) => {
      dev = d;
      const s = d.state || {};
      value.textContent = s.target_c === null || s.target_c === undefined ? "–" : `${s.target_c} °C`;
      now.textContent = `Now ${s.current_c ?? "?"} °C · ${s.mode ?? ""}${d.availability === "online" ? "" : " · " + d.availability}`;
    };
    return card;
  }

  const cards = {};

  function render() {
    $("room-name").textContent = room.name;
    const scenes = $("scenes");
    scenes.replaceChildren(...room.scenes.map((s) => el("button", {
      "data-scene": s.id,
      onclick: async (ev) => {
        ev.target.disabled = true;
        await call("POST", `/api/v1/rooms/${room.room_id}/scenes/${s.id}/activate`);
        ev.target.disabled = false;
      },
    }, s.name)));
    const controls = $("controls");
    controls.replaceChildren();
    for (const [id, dev] of Object.entries(room.devices)) {
      let card = null;
      if (dev.kind === "light") card = lightControl(id, dev);
      else if (dev.kind === "climate") card = climateControl(id, dev);
      if (!card) continue;
      cards[dev.device_id] = { card, dev };
      card.update(dev);
      controls.append(card);
    }
  }

  function onMessage(msg) {
    if (msg.type === "hello") {
      const fresh = msg.rooms.find((r) => r.room_id === room.room_id);
      if (fresh) { room = fresh; render(); }
    } else if (msg.type === "device_state" && cards[msg.data.device_id]) {
      const entry = cards[msg.data.device_id];
      entry.dev = { ...entry.dev, ...msg.data };
      entry.card.update(entry.dev);
    }
  }

  async function start() {
    const roomId = store.getItem("coresync.tablet.room");
    const data = await call("GET", `/api/v1/rooms/${roomId}`);
    if (!data) return;
    room = data;
    $("pairing").classList.add("hidden");
    $("room").classList.remove("hidden");
    render();
    socket = liveSocket({
      token: token(),
      onMessage,
      onState: (up, code) => {
        $("offline").classList.toggle("hidden", up);
        $("status").textContent = up ? "live" : "offline";
        if (code === 4401) forget();
      },
    });
  }

  if (token()) start(); else showPairing();
})();
