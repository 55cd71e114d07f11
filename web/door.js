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

  // The security in force for a face or PIN attempt, when a schedule period set it.
  function security(e) {
    const s = e.security;
    if (!s || s.period === "usual") return "";
    const how = `${s.mode.replace(/_/g, " ")}${s.challenge ? " + challenge" : ""}`;
    return el("span", { class: "muted", title: "security period in force" }, ` · ${how} (${s.period})`);
  }

  function row(raw) {
    const e = normal(raw);
    const actor = e.method === "remote" || e.type === "lock_command" ? e.actor : "";
    return el("tr", { "data-event": e.id ?? "", "data-decision": e.decision, "data-method": e.method },
      el("td", { class: "nowrap" }, when(e.time || e.ts)),
      el("td", {}, e.method),
      el("td", {}, badge(e.decision, DECISION[e.decision] || "")),
      el("td", {}, who(e) || actor || el("span", { class: "muted" }, "—")),
      el("td", { class: "reason" }, (e.reason || "").replace(/_/g, " "), security(e)),
      el("td", { class: "nowrap" }, score(e)),
      el("td", {}, liveness(e)),
      el("td", {}, latency(e)));
  }

  // -- filters and repeats ----------------------------------------------------------
  // The same event again (decision, how, who, reason) within GROUP_S of the
  // newest of its run is one row, "×14 in 2 min": a camera denying an unknown
  // face every few seconds must not flood the page.
  const GROUP_S = 120;
  const MAX_EVENTS = 500;
  const SINCE = [["", "Any time"], ["1", "Last hour"], ["24", "Last 24 h"], ["168", "Last 7 days"]];
  const filters = { decision: "", method: "", member: "", since: "" };
  let events = []; // newest first, as the API and the WebSocket give them

  const millis = (e) => { const ts = e.time || e.ts; return typeof ts === "number" ? ts * 1000 : Date.parse(ts); };

  function matches(raw) {
    const e = normal(raw);
    if (filters.decision && e.decision !== filters.decision) return false;
    if (filters.method && e.method !== filters.method) return false;
    if (filters.member) {
      const text = `${who(e)} ${e.member_id || ""} ${e.actor || ""}`.toLowerCase();
      if (!text.includes(filters.member.toLowerCase())) return false;
    }
    if (filters.since && Date.now() - millis(e) > Number(filters.since) * 3600 * 1000) return false;
    return true;
  }

  function groups(list) {
    const out = [];
    for (const raw of list) {
      const e = normal(raw);
      const key = [e.decision, e.method, e.member_id || "", e.reason || ""].join("|");
      const at = millis(e);
      const last = out[out.length - 1];
      if (last && last.key === key && last.newest - at <= GROUP_S * 1000) {
        last.count += 1;
        last.oldest = at;
        continue;
      }
      out.push({ key, raw, count: 1, newest: at, oldest: at });
    }
    return out;
  }

  function groupRow(g) {
    const tr = row(g.raw);
    if (g.count > 1) {
      const span = Math.max(1, Math.round((g.newest - g.oldest) / 60000));
      tr.dataset.repeats = String(g.count);
      tr.querySelector("td.reason").append(" ", badge(`×${g.count} in ${span} min`, "warn"));
    }
    return tr;
  }

  function select(name, label, options) {
    const node = el("select", { name, "aria-label": label },
      options.map(([value, text]) => el("option", { value, selected: filters[name] === value }, text)));
    node.addEventListener("change", () => { filters[name] = node.value; draw(); });
    return node;
  }

  function filterBar() {
    const seen = (get) => [...new Set(events.map((e) => get(normal(e))).filter(Boolean))].sort();
    const decisions = [...new Set(["unlock", "deny", "cooldown", ...seen((e) => e.decision)])];
    const member = el("input", { type: "search", name: "member", value: filters.member,
      placeholder: "Member or staff", "aria-label": "Filter by member or staff" });
    member.addEventListener("input", () => { filters.member = member.value.trim(); draw(); });
    return el("div", { class: "toolbar door-filters", id: "door-filters" },
      select("decision", "Filter by decision", [["", "Any decision"], ...decisions.map((d) => [d, d])]),
      select("method", "Filter by how", [["", "Any way"], ...seen((e) => e.method).map((m) => [m, m])]),
      member, select("since", "Filter by time", SINCE));
  }

  function draw(fresh) {
    const host = document.getElementById("door-events");
    if (!host) return;
    if (!events.length) {
      host.replaceChildren(el("p", { class: "muted", id: "door-events-empty" }, "No door events yet."));
      return;
    }
    const shown = groups(events.filter(matches));
    const table = eventsTable(shown.map(groupRow));
    if (fresh && shown.length && shown[0].raw === fresh) table.querySelector("tbody tr").classList.add("fresh");
    const focused = document.activeElement && document.activeElement.name;
    host.replaceChildren(filterBar(), shown.length ? table
      : el("p", { class: "muted", id: "door-events-none" }, "No door events match these filters."));
    if (focused) { const again = host.querySelector(`[name="${focused}"]`); if (again) again.focus(); }
  }

  function eventsTable(rows) {
    return el("table", { id: "door-events-table" },
      el("thead", {}, el("tr", {}, ["When", "How", "Decision", "Who", "Reason", "Distance", "Liveness", "Latency (ms)"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
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
      s.security ? el("div", {}, el("span", { class: "muted" }, "Security "),
        `${s.security.mode.replace(/_/g, " ")}${s.security.challenge ? " + challenge" : ""}${s.security.period === "usual" ? "" : ` (${s.security.period})`}`) : null,
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
      dash.call("GET", "/api/v1/door-events?limit=500"),
      CoreSync.api("GET", "/api/v1/door/members?limit=500").catch(() => null),
      renderStatus(),
    ]);
    if (members) names = Object.fromEntries(members.members.map((m) => [m.id, m.name]));
    if (!data) return;
    events = data.events;
    draw();
  }

  let statusTimer = null;
  function onEvent(msg) {
    if (msg.type !== "door" && !(msg.type === "alert" && String(msg.data.kind || "").startsWith("door"))) return;
    const host = document.getElementById("door-events");
    if (!host) return;
    const event = msg.type === "door" ? { type: "door", ...msg.data } : { type: "alert", ts: msg.ts, ...msg.data };
    events = [event, ...events].slice(0, MAX_EVENTS);
    draw(event);
    clearTimeout(statusTimer);
    statusTimer = setTimeout(renderStatus, 300); // vision and cooldown follow the events
  }

  dash.register({ id: "doors", label: "Door events", render, onEvent });
})();
