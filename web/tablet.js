// Guest tablet: pairing, the site's name and a clock, mood (scene) buttons,
// light, climate and sauna controls bounded by the device limits, live state
// over the WebSocket. Words come from TabletI18n; a device or the controller
// offline pauses its controls with a sentence, and an error clears when its
// cause does.
"use strict";

(() => {
  const { api, liveSocket, el } = CoreSync;
  const { t } = TabletI18n;
  const $ = (id) => document.getElementById(id);
  const store = window.localStorage;
  const GUEST_POLL_MS = 15000;
  let room = null;
  let site = { name: "", timezone: undefined };
  let languages = ["en"];
  let socket = null;
  let connected = false;
  let error = null; // { key, vars, cause: "network" | device id | null }
  const cards = {};
  let heaters = {};
  let sceneMoods = {};

  // -- errors a guest understands ------------------------------------------------
  function showError(next) {
    error = next;
    $("error").textContent = next ? t(next.key, next.vars) : "";
    $("error").classList.toggle("hidden", !next);
  }

  function clearError(cause) {
    if (error && (cause === undefined || error.cause === cause)) showError(null);
  }

  function guestError(err, deviceId) {
    const dev = deviceId && cards[deviceId] ? cards[deviceId].dev : null;
    const name = dev ? dev.name : "";
    if (!(err instanceof CoreSync.ApiError)) return { key: "err_network", vars: {}, cause: "network" };
    switch (err.code) {
      case "device_timeout": return { key: "err_timeout", vars: { name }, cause: deviceId };
      case "device_unavailable": return { key: "err_unavailable", vars: { name }, cause: deviceId };
      case "limit_violation": return { key: "err_limit", vars: {}, cause: null };
      case "scene_failed": return { key: "err_scene", vars: {}, cause: null };
      case "storage_unavailable": return { key: "err_generic", vars: {}, cause: null };
      default: return { key: "err_generic", vars: {}, cause: null };
    }
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
      showError(null);
      await start();
    } catch (err) {
      showError(err.code === "invalid_field" ? { key: "pair_bad_code", vars: {}, cause: null } : guestError(err));
    }
  });

  async function call(method, path, body, deviceId) {
    try {
      const result = await api(method, path, body, token());
      clearError();
      return result;
    } catch (err) {
      if (err.status === 401) { forget(); return null; }
      showError(guestError(err, deviceId));
      return null;
    }
  }

  const command = (dev) => (values) =>
    call("POST", `/api/v1/rooms/${room.room_id}/devices/${dev.device_id.split("/")[1]}/command`, values, dev.device_id);

  // Paused controls: the device offline, or the controller out of reach.
  function availability(card, dev, notice) {
    const offline = dev.availability !== "online";
    card.classList.toggle("offline", offline);
    notice.textContent = offline ? t("device_offline", { name: dev.name }) : "";
    notice.classList.toggle("hidden", !offline);
    for (const control of card.querySelectorAll("button, input")) control.disabled = offline || !connected;
    if (!offline) clearError(dev.device_id);
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
    const send = command(dev);
    const value = el("span", { class: "value", "data-role": "value" });
    const slider = el("input", { type: "range", min: lim.min_brightness, max: lim.max_brightness, step: 1, "data-device": id });
    slider.addEventListener("change", () => send({ on: true, brightness: Number(slider.value) }));
    const toggle = el("button", { class: "big secondary", "data-role": "toggle" });
    toggle.addEventListener("click", () => send({ on: !(dev.state && dev.state.on) }));
    // Colour (chromotherapy): a picker unless the light is kept to white.
    const colour = lim.allow_color === false ? null : el("input", { type: "color", "data-role": "color" });
    if (colour) colour.addEventListener("change", () => send({ on: true, color: colour.value }));
    const notice = el("p", { class: "notice hidden", "data-role": "offline-notice", role: "status" });
    const card = el("div", { class: "control", "data-device": id },
      el("h3", {}, dev.name), el("div", { class: "row" }, value, toggle), slider, ...(colour ? [colour] : []), notice);
    card.update = (d) => {
      dev = d;
      const s = d.state || {};
      value.textContent = s.on ? `${new Intl.NumberFormat(TabletI18n.locale()).format(s.brightness ?? 0)} %` : t("light_off");
      toggle.textContent = s.on ? t("turn_off") : t("turn_on");
      slider.setAttribute("aria-label", t("brightness", { name: d.name }));
      if (colour) {
        colour.setAttribute("aria-label", t("colour", { name: d.name }));
        if (Array.isArray(s.color_xy) && document.activeElement !== colour) {
          colour.value = xyToHex(s.color_xy[0], s.color_xy[1]);
        }
      }
      if (typeof s.brightness === "number" && document.activeElement !== slider) {
        slider.value = Math.min(lim.max_brightness, Math.max(lim.min_brightness, s.brightness));
      }
      availability(card, d, notice);
    };
    return card;
  }

  function climateControl(id, dev) {
    const lim = dev.limits;
    const send = command(dev);
    const value = el("span", { class: "value", "data-role": "value" });
    const step = (delta) => {
      const current = (dev.state && dev.state.target_c) ?? (lim.min_target_c + lim.max_target_c) / 2;
      send({ target_c: Math.min(lim.max_target_c, Math.max(lim.min_target_c, Math.round((current + delta) * 2) / 2)) });
    };
    const minus = el("button", { class: "big secondary", "data-i18n-label": "cooler" }, "−");
    minus.addEventListener("click", () => step(-0.5));
    const plus = el("button", { class: "big secondary", "data-i18n-label": "warmer" }, "+");
    plus.addEventListener("click", () => step(0.5));
    const range = el("span", { class: "muted" });
    const now = el("div", { class: "muted" });
    const notice = el("p", { class: "notice hidden", "data-role": "offline-notice", role: "status" });
    const card = el("div", { class: "control", "data-device": id },
      el("h3", {}, el("span", {}, dev.name), range), el("div", { class: "row" }, minus, value, plus), now, notice);
    card.update = (d) => {
      dev = d;
      const s = d.state || {};
      value.textContent = TabletI18n.temp(s.target_c);
      range.textContent = t("range", { min: TabletI18n.temp(lim.min_target_c), max: TabletI18n.temp(lim.max_target_c) });
      now.textContent = t("now_temp", { temp: TabletI18n.temp(s.current_c) });
      availability(card, d, notice);
    };
    return card;
  }

  // A colour of its own for each mood, from its id (the project's CSS, no images).
  function sceneHue(id) {
    let h = 0;
    for (const ch of id) h = (h * 31 + ch.charCodeAt(0)) % 360;
    return h;
  }

  function render() {
    $("room-name").textContent = room.name;
    $("site-name").textContent = site.name;
    $("scenes").replaceChildren(...room.scenes.map((s) => {
      const button = el("button", { class: "scene", "data-scene": s.id }, s.name);
      button.style.setProperty("--scene-hue", String(sceneHue(s.id)));
      button.addEventListener("click", async () => {
        button.disabled = true;
        await call("POST", `/api/v1/rooms/${room.room_id}/scenes/${s.id}/activate`);
        button.disabled = !connected;
      });
      return button;
    }));
    const controls = $("controls");
    controls.replaceChildren();
    for (const key of Object.keys(cards)) delete cards[key];
    for (const [id, dev] of Object.entries(room.devices)) {
      let card = null;
      if (dev.kind === "climate" && heaters[id]) {
        card = TabletSauna.card(id, dev, { send: command(dev), availability });
        card.setGuest(heaters[id]);
      } else if (dev.kind === "light") card = lightControl(id, dev);
      else if (dev.kind === "climate") card = climateControl(id, dev);
      if (!card) continue;
      cards[dev.device_id] = { card, dev };
      card.update(dev);
      controls.append(card);
    }
    TabletI18n.apply($("room"));
    renderTools();
  }

  function renderTools() {
    $("languages").replaceChildren(...languages.map((code) => {
      const button = el("button", { class: "secondary lang", "data-lang": code, lang: code,
        "aria-pressed": String(code === TabletI18n.lang) }, code.toUpperCase());
      button.addEventListener("click", async () => { await TabletI18n.load(code); rerender(); });
      return button;
    }));
    const dim = document.body.classList.contains("dim");
    $("theme").textContent = dim ? t("theme_bright") : t("theme_dim");
    $("status").textContent = connected ? t("status_live") : t("status_offline");
    $("status").dataset.state = connected ? "live" : "offline";
    for (const button of $("scenes").querySelectorAll("button")) button.disabled = !connected;
  }

  function rerender() {
    if (!room) return;
    for (const { card, dev } of Object.values(cards)) card.update(dev);
    TabletI18n.apply(document);
    renderTools();
    if (error) showError(error);
    tick();
  }

  // -- clock, theme, the sauna's numbers -------------------------------------------
  function tick() {
    const { time, day } = TabletI18n.clock(new Date(), site.timezone);
    $("clock-time").textContent = time;
    $("clock-date").textContent = day;
    for (const { card } of Object.values(cards)) if (card.tick) card.tick();
  }

  function setTheme(dim, remember) {
    document.body.classList.toggle("dim", dim);
    if (remember) store.setItem("coresync.tablet.theme", dim ? "dim" : "bright");
    if (room) renderTools();
  }

  // The look follows the last scene run in the room (a low-light scene dims
  // it); a tap on the theme button holds until the next scene; otherwise the
  // time of day decides.
  function autoTheme() {
    const chosen = store.getItem("coresync.tablet.theme");
    if (chosen) return setTheme(chosen === "dim", false);
    const hour = Number(new Intl.DateTimeFormat("en", { hour: "numeric", hourCycle: "h23", timeZone: site.timezone }).format(new Date()));
    setTheme(hour >= 20 || hour < 7, false); // evenings and nights: the dim look
  }

  // The spa's name, and its logo when the site config names one.
  function showSite() {
    $("site-name").textContent = site.name;
    const logo = $("site-logo");
    if (site.logo && logo.getAttribute("src") !== site.logo) logo.setAttribute("src", site.logo);
    logo.classList.toggle("hidden", !site.logo);
  }

  let guestTimer = null;
  async function refreshGuest() {
    clearTimeout(guestTimer);
    guestTimer = setTimeout(refreshGuest, GUEST_POLL_MS);
    if (!room) return;
    try {
      const data = await api("GET", `/api/v1/rooms/${room.room_id}/guest`, undefined, token());
      site = data.site;
      languages = data.languages.length ? data.languages : ["en"];
      heaters = data.heaters;
      sceneMoods = data.scene_moods || {};
      showSite();
      for (const [id, view] of Object.entries(heaters)) {
        const entry = cards[`${room.room_id}/${id}`];
        if (entry && entry.card.setGuest) entry.card.setGuest(view);
      }
      renderTools();
    } catch (_) { /* shown by the connection state; retried on the next poll */ }
  }

  let heaterRefresh = null;
  function onMessage(msg) {
    if (msg.type === "scene" && room && msg.room_id === room.room_id && sceneMoods[msg.data.scene_id]) {
      store.setItem("coresync.tablet.theme", sceneMoods[msg.data.scene_id]);
      setTheme(sceneMoods[msg.data.scene_id] === "dim", false);
    }
    if (msg.type === "hello") {
      const fresh = msg.rooms.find((r) => r.room_id === room.room_id);
      if (fresh) { room = fresh; render(); }
    } else if (msg.type === "device_state" && cards[msg.data.device_id]) {
      const entry = cards[msg.data.device_id];
      entry.dev = { ...entry.dev, ...msg.data };
      entry.card.update(entry.dev);
      if (entry.card.setGuest && !heaterRefresh) {
        heaterRefresh = setTimeout(() => { heaterRefresh = null; refreshGuest(); }, 1000);
      }
    }
  }

  async function start() {
    const roomId = store.getItem("coresync.tablet.room");
    let data = null;
    let guest = null;
    try {
      [data, guest] = await Promise.all([
        api("GET", `/api/v1/rooms/${roomId}`, undefined, token()),
        api("GET", `/api/v1/rooms/${roomId}/guest`, undefined, token()),
      ]);
    } catch (err) {
      if (err.status === 401) { forget(); return; }
      showError(guestError(err));
      setTimeout(start, 5000); // the controller may be starting: try again
      return;
    }
    room = data;
    site = guest.site;
    showSite();
    TabletI18n.setSiteLocale(site.locale);
    languages = guest.languages.length ? guest.languages : ["en"];
    heaters = guest.heaters;
    sceneMoods = guest.scene_moods || {};
    const wanted = TabletI18n.preferred();
    await TabletI18n.load(languages.includes(wanted) ? wanted : "en");
    $("pairing").classList.add("hidden");
    $("room").classList.remove("hidden");
    clearError("network");
    autoTheme();
    render();
    tick();
    setInterval(tick, 1000);
    refreshGuest();
    socket = liveSocket({
      token: token(),
      onMessage,
      onState: (up, code) => {
        connected = up;
        $("offline").classList.toggle("hidden", up);
        if (up) clearError("network");
        for (const { card, dev } of Object.values(cards)) card.update(dev);
        renderTools();
        if (code === 4401) forget();
      },
    });
  }

  $("theme").addEventListener("click", () => setTheme(!document.body.classList.contains("dim"), true));
  TabletI18n.load(TabletI18n.preferred()).then(() => { if (token()) start(); else showPairing(); });
})();
