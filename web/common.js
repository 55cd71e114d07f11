// Shared helpers of the CoreSync pages: API calls with JSON errors, and a
// WebSocket that reconnects with a random, capped, growing delay.
"use strict";

const CoreSync = (() => {
  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  class ApiError extends Error {
    constructor(status, error) {
      super(error && error.message ? error.message : `HTTP ${status}`);
      this.status = status;
      this.code = error ? error.code : "http_" + status;
      this.field = error ? error.field : null;
    }
  }

  // token: a bearer token (tablets) or null (staff pages use the session cookie).
  async function api(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    else if (method !== "GET") headers["X-CSRF-Token"] = cookie("coresync_csrf");
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let data = null;
    try { data = await resp.json(); } catch (_) { data = null; }
    if (!resp.ok) throw new ApiError(resp.status, data && data.error);
    return data;
  }

  // Calls onMessage(obj) for each message, onState(true|false) on connect/drop.
  function liveSocket({ token, onMessage, onState }) {
    let attempt = 0;
    let socket = null;
    let stopped = false;
    let timer = null;
    function retry() {
      attempt += 1;
      const cap = Math.min(15000, 500 * 2 ** attempt);
      timer = setTimeout(connect, Math.random() * cap); // full jitter
    }
    async function connect() {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      let query = "";
      if (token) {
        // The token goes in a header; the URL carries a one-time ticket only.
        try {
          const { ticket } = await api("POST", "/api/v1/ws/ticket", undefined, token);
          query = "?ticket=" + encodeURIComponent(ticket);
        } catch (err) {
          const revoked = err instanceof ApiError && err.status === 401;
          onState(false, revoked ? 4401 : 1006);
          if (!stopped && !revoked) retry();
          return;
        }
        if (stopped) return;
      }
      socket = new WebSocket(`${scheme}//${location.host}/api/v1/ws${query}`);
      socket.onopen = () => { attempt = 0; onState(true); };
      socket.onmessage = (ev) => {
        try { onMessage(JSON.parse(ev.data)); } catch (err) { console.error(err); }
      };
      socket.onclose = (ev) => {
        onState(false, ev.code);
        if (stopped || ev.code === 4401) return;
        retry();
      };
    }
    connect();
    return {
      close() { stopped = true; clearTimeout(timer); if (socket) socket.close(); },
    };
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (value === true) node.setAttribute(key, "");
      else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function describeState(device) {
    const s = device.state || {};
    switch (device.kind) {
      case "light":
        if (s.on === null || s.on === undefined) return "unknown";
        return s.on ? `on · ${s.brightness ?? "?"} %` : "off";
      case "climate":
        return `${s.mode ?? "?"} · set ${s.target_c ?? "?"} °C · now ${s.current_c ?? "?"} °C`;
      case "lock":
        return `${s.locked ? "locked" : s.locked === false ? "unlocked" : "?"}${s.door_open ? " · door open" : ""}${s.jammed ? " · JAMMED" : ""}`;
      default:
        return Object.entries(s.values || {}).map(([k, v]) => `${k} ${v}`).join(" · ") || "—";
    }
  }

  return { api, liveSocket, el, describeState, ApiError, cookie };
})();
