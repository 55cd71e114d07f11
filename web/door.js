// Door events page: the door's status, staff remote unlock (reason required)
// and the event feed — door decisions live over the WebSocket, with member,
// match score, liveness and per-stage latency; lock commands and door alerts too.
"use strict";

(() => {
  const { el } = CoreSync;
  const dash = CoreSyncDashboard;
  const badge = (text, kind = "") => el("span", { class: `badge ${kind}` }, text);
  const DECISION = { unlock: "ok", deny: "bad", cooldown: "warn", error: "bad" };
  const STAGES = ["detect", "landmarks", "embed", "mesh", "match", "liveness", "member_check", "lock"];
  let names = {};

  const when = (ts) => (ts ? new Date(typeof ts === "number" ? ts * 1000 : ts).toLocaleString() : "");
  const who = (e) => (e.member_id ? (names[e.member_id] || e.member_id) : "");

  function score(e) {
    if (e.distance === null || e.distance === undefined) return "—";
    const margin = e.margin === null || e.margin === undefined ? "" : ` · margin ${e.margin.toFixed(2)}`;
    return `${e.distance.toFixed(3)}${margin}`;
  }

  function liveness(e) {
    const l = e.liveness;
    if (!l) return "—";
    if (l.reason === "liveness off") return badge("off");
    return el("span", {}, badge(l.passed ? "live" : "not live", l.passed ? "ok" : "bad"), " ",
      el("span", { class: "muted" }, [l.blink && "blink", l.motion && "motion"].filter(Boolean).join(" + ") || l.reason || ""));
  }

  function latency(e) {
    const l = e.latency_ms;
    if (!l) return "—";
    const parts = STAGES.filter((s) => l[s] !== undefined).map((s) => `${s.replace("_", " ")} ${Math.round(l[s])}`);
    const total = l.frame_to_decision !== undefined ? el("strong", {}, `${Math.round(l.frame_to_decision)} ms`) : null;
    return el("span", { class: "latency" }, total, total && parts.length ? " · " : "", el("span", { class: "muted" }, parts.join(" · ")));
  }

  // One row shape for the three kinds the API merges: door decisions, lock
  // commands sent by staff or scenes, and door alerts.
  function normal(e) {
    if (e.type === "lock_command") {
      return { ...e, method: e.scene_id ? "scene" : "staff", decision: e.result === "ok" ? "command" : "error",
        reason: `${JSON.stringify(e.command)}${e.scene_id ? ` (scene ${e.scene_id})` : ""}`, actor: `${e.actor_kind}:${e.actor_id}` };
    }
    if (e.type === "alert") return { ...e, method: "alert", decision: "alert", reason: e.message || e.kind };
    return e;
  }

  function row(raw) {
    const e = normal(raw);
    const actor = e.method === "remote" || e.type === "lock_command" ? e.actor : "";
    return el("tr", { "data-event": e.id ?? "", "data-decision": e.decision, "data-method": e.method },
      el("td", { class: "nowrap" }, when(e.time || e.ts)),
      el("td", {}, e.method),
      el("td", {}, badge(e.decision, DECISION[e.decision] || "")),
      el("td", {}, who(e) || actor || el("span", { class: "muted" }, "—")),
      el("td", { class: "reason" }, (e.reason || "").replace(/_/g, " ")),
      el("td", { class: "nowrap" }, score(e)),
      el("td", {}, liveness(e)),
      el("td", {}, latency(e)));
  }

  function eventsTable(events) {
    return el("table", { id: "door-events-table" },
      el("thead", {}, el("tr", {}, ["When", "How", "Decision", "Who", "Reason", "Distance", "Liveness", "Latency (ms)"].map((h) => el("th", {}, h)))),
      el("tbody", {}, events.map(row)));
  }

  async function renderStatus() {
    const host = document.getElementById("door-status");
    if (!host) return;
    let s;
    try { s = await CoreSync.api("GET", "/api/v1/door/status"); } catch (err) {
      host.replaceChildren(el("span", { class: "muted" }, err.status === 404 ? "This site has no [door] section." : err.message));
      return;
    }
    host.dataset.vision = s.vision;
    host.replaceChildren(...[
      el("div", {}, el("span", { class: "muted" }, "Door "), el("strong", {}, s.door)),
      el("div", {}, el("span", { class: "muted" }, "Vision "), s.camera ? badge(s.vision === "ok" ? "up" : "down", s.vision === "ok" ? "ok" : "bad") : badge("no camera", "warn")),
      el("div", {}, el("span", { class: "muted" }, "Face access "), s.cooling_down ? badge("cooling down", "warn") : badge("ready", "ok")),
      el("div", {}, el("span", { class: "muted" }, "Enrolled "), el("strong", {}, String(s.enrolled_members))),
      el("div", {}, el("span", { class: "muted" }, "Liveness "), s.liveness),
      s.worker_restarts ? el("div", {}, el("span", { class: "muted" }, "Worker restarts "), String(s.worker_restarts)) : null,
    ].filter(Boolean));
  }

  function unlockForm() {
    const reason = el("input", { id: "unlock-reason", placeholder: "Reason (required), e.g. courier delivery", "aria-label": "Reason for remote unlock", minlength: "3", maxlength: "200" });
    const go = el("button", { type: "submit", class: "danger", id: "unlock-door", disabled: true }, "Unlock door");
    reason.addEventListener("input", () => { go.disabled = reason.value.trim().length < 3; });
    return el("form", { class: "toolbar unlock", onsubmit: async (ev) => {
      ev.preventDefault();
      go.disabled = true;
      const done = await dash.call("POST", "/api/v1/door/unlock", { reason: reason.value.trim() });
      if (done) { dash.flash("Door unlocked; it relocks by itself"); reason.value = ""; } else go.disabled = false;
    } }, reason, go);
  }

  async function render(page) {
    page.replaceChildren(
      el("div", { class: "page-head" }, el("h1", {}, "Door events"), el("span", { class: "muted" }, "Live · newest first")),
      el("div", { id: "door-status", class: "status-strip card" }, el("span", { class: "muted" }, "…")),
      unlockForm(),
      el("div", { id: "door-events" }));
    const [data, members] = await Promise.all([
      dash.call("GET", "/api/v1/door-events?limit=200"),
      CoreSync.api("GET", "/api/v1/door/members?limit=500").catch(() => null),
      renderStatus(),
    ]);
    if (members) names = Object.fromEntries(members.members.map((m) => [m.id, m.name]));
    if (!data) return;
    document.getElementById("door-events").replaceChildren(data.events.length ? eventsTable(data.events)
      : el("p", { class: "muted", id: "door-events-empty" }, "No door events yet."));
  }

  let statusTimer = null;
  function onEvent(msg) {
    if (msg.type !== "door" && !(msg.type === "alert" && String(msg.data.kind || "").startsWith("door"))) return;
    const host = document.getElementById("door-events");
    if (!host) return;
    const event = msg.type === "door" ? { type: "door", ...msg.data } : { type: "alert", ts: msg.ts, ...msg.data };
    let body = host.querySelector("tbody");
    if (!body) { host.replaceChildren(eventsTable([])); body = host.querySelector("tbody"); }
    const tr = row(event);
    tr.classList.add("fresh");
    body.prepend(tr);
    while (body.children.length > 200) body.lastChild.remove();
    clearTimeout(statusTimer);
    statusTimer = setTimeout(renderStatus, 300); // vision and cooldown follow the events
  }

  dash.register({ id: "doors", label: "Door events", render, onEvent });
})();
