// Members page: shop members with their door status (consent, enrolled face
// templates, PIN) and the door actions — record or withdraw consent, set a
// PIN, enroll from 3-5 photos (every quality problem shown per photo), consent
// history, and the member data export (managers and admins).
"use strict";

(() => {
  const { api, el, cookie } = CoreSync;
  const dash = CoreSyncDashboard;
  const DOOR = "/api/v1/door/members";
  const ROLES = ["staff", "manager", "admin"];
  const badge = (text, kind = "") => el("span", { class: `badge ${kind}` }, text);
  const CONSENT = { active: "ok", withdrawn: "bad", none: "" };
  let me = null;
  let search = "";

  const day = (iso) => (iso ? new Date(iso).toLocaleDateString() : "");
  const button = (label, action, onclick, cls = "secondary") => el("button", { type: "button", class: cls, "data-action": action, onclick }, label);

  function panel(member, title, ...body) {
    const host = document.getElementById("member-panel");
    host.classList.remove("hidden");
    host.dataset.member = member.id;
    host.replaceChildren(
      el("header", {}, el("h2", {}, `${title} · ${member.name}`), button("Close", "close", () => host.classList.add("hidden"))),
      ...body);
    const first = host.querySelector("input, textarea");
    if (first) first.focus();
    host.scrollIntoView({ block: "nearest" });
  }

  function field(label, input, hint) {
    return el("label", { class: "field" }, el("span", {}, label), input, hint ? el("small", { class: "muted" }, hint) : null);
  }

  async function afterChange(text) {
    dash.flash(text);
    await refresh();
  }

  // -- actions -----------------------------------------------------------------------
  function consentForm(m) {
    const purpose = el("input", { name: "purpose", value: "door access by face", minlength: "3", maxlength: "200", required: true });
    const days = el("input", { name: "retention_days", type: "number", min: "1", max: "1095", placeholder: "site default" });
    const read = el("input", { type: "checkbox", name: "agreed", required: true });
    panel(m, "Record consent", el("form", { class: "door-form", id: "consent-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = { purpose: purpose.value.trim() };
      if (days.value) body.retention_days = Number(days.value);
      const done = await dash.call("POST", `${DOOR}/${m.id}/consent`, body);
      if (done) await afterChange(`Consent #${done.consent_id} recorded for ${m.name} (witness ${done.witness}, ${done.retention_days} days)`);
    } },
    field("Purpose", purpose),
    field("Retention (days)", days, "Templates are destroyed this long after the last visit; at most the site's limit."),
    field("Witness", el("input", { value: me ? me.username : "", readonly: true, "aria-readonly": "true" }), "You, as the staff member logged in."),
    el("label", { class: "check" }, read, " The member read the consent text and agrees to face access at the door."),
    el("div", { class: "actions" }, el("button", { type: "submit" }, "Record consent"))));
  }

  function withdrawForm(m) {
    const note = el("input", { name: "note", maxlength: "200", placeholder: "Note (optional)" });
    panel(m, "Withdraw consent",
      el("p", {}, `Withdraw ${m.name}'s consent? Their ${m.templates} face template(s) are destroyed at once and cannot be recovered.`),
      el("div", { class: "actions" }, note, button("Withdraw and destroy", "confirm-withdraw", async () => {
        const done = await dash.call("POST", `${DOOR}/${m.id}/consent/withdraw`, { note: note.value.trim() });
        if (done) await afterChange(`Consent withdrawn; ${done.templates_destroyed} template(s) destroyed`);
      }, "danger")));
  }

  function pinForm(m) {
    const pin = el("input", { name: "pin", type: "password", inputmode: "numeric", pattern: "[0-9]{4,8}", autocomplete: "off", placeholder: "4 to 8 digits", required: true });
    panel(m, m.pin ? "Change PIN" : "Set PIN", el("form", { class: "door-form", id: "pin-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const done = await dash.call("PUT", `${DOOR}/${m.id}/pin`, { pin: pin.value });
      pin.value = "";
      if (done) await afterChange(`PIN set for ${m.name}`);
    } }, field("Door PIN", pin, "The member types it at the keypad."), el("div", { class: "actions" }, el("button", { type: "submit" }, "Save PIN"))));
  }

  function enrollForm(m) {
    const files = el("input", { type: "file", name: "photos", accept: "image/jpeg,image/png", multiple: true, required: true });
    const results = el("ul", { class: "photo-results", id: "enroll-results" });
    const go = el("button", { type: "submit", id: "enroll-submit" }, "Enroll");
    files.addEventListener("change", () => {
      results.replaceChildren(...[...files.files].map((f) => el("li", { "data-photo": f.name }, el("strong", {}, f.name), " ", el("span", { class: "muted" }, `${Math.round(f.size / 1024)} KiB`))));
    });
    panel(m, "Enroll face", el("form", { class: "door-form", id: "enroll-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const chosen = [...files.files];
      if (chosen.length < 3 || chosen.length > 5) { dash.flash("Choose 3 to 5 photos"); return; }
      go.disabled = true;
      go.textContent = "Checking photos…";
      try {
        const form = new FormData();
        for (const f of chosen) form.append("photos", f, f.name);
        const resp = await fetch(`${DOOR}/${m.id}/enroll`, { method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRF-Token": cookie("coresync_csrf"), Accept: "application/json" } });
        const data = await resp.json().catch(() => ({}));
        if (resp.ok) {
          showResults(results, chosen, {});
          await afterChange(`${m.name}: ${data.templates} face templates enrolled`);
          return;
        }
        const error = data.error || {};
        dash.flash(error.message || `HTTP ${resp.status}`);
        const problems = data.problems || error.problems;
        if (problems) showResults(results, chosen, problems);
      } finally {
        go.disabled = false;
        go.textContent = "Enroll";
      }
    } },
    m.consent === "active" ? null : el("p", { class: "form-error" }, "No active consent: record consent first."),
    field("Photos (3 to 5)", files, "Face the camera, even light, one person per photo. Photos are checked, then discarded: never stored."),
    results,
    el("div", { class: "actions" }, go)));
  }

  // Every photo gets a verdict: passed, or each reason the quality gate gave.
  function showResults(host, chosen, problems) {
    host.replaceChildren(...chosen.map((f) => {
      const issues = problems[f.name];
      return el("li", { "data-photo": f.name, class: issues ? "bad" : "ok" },
        el("strong", {}, f.name), " ", issues ? badge("rejected", "bad") : badge("passed", "ok"),
        issues ? el("ul", {}, issues.map((i) => el("li", {}, i))) : null);
    }));
  }

  async function historyPanel(m) {
    const data = await dash.call("GET", `${DOOR}/${m.id}/consent`);
    if (!data) return;
    panel(m, "Consent history", data.history.length ? dash.table([
      ["When", (c) => new Date(c.recorded_at).toLocaleString()],
      ["Action", (c) => badge(c.action, c.action === "grant" ? "ok" : "bad")],
      ["Purpose", (c) => c.purpose || ""], ["Retention", (c) => (c.retention_days ? `${c.retention_days} days` : "")],
      ["Text", (c) => c.text_version || ""], ["Witness", (c) => c.witness], ["Note", (c) => c.note || ""],
    ], data.history) : el("p", { class: "muted" }, "No consent recorded."));
  }

  async function exportMember(m) {
    const data = await dash.call("GET", `/api/v1/members/${m.id}/export`);
    if (!data) return;
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `member-${m.id}-export.json` });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    dash.flash(`Export of ${m.name} downloaded`);
  }

  // -- the list ----------------------------------------------------------------------
  function actions(m) {
    const manager = me && ROLES.indexOf(me.role) >= ROLES.indexOf("manager");
    return el("div", { class: "actions" },
      m.consent === "active" ? button("Withdraw", "withdraw", () => withdrawForm(m)) : button("Consent", "consent", () => consentForm(m), ""),
      m.consent === "active" ? button("Enroll", "enroll", () => enrollForm(m), "") : null,
      button(m.pin ? "PIN" : "Set PIN", "pin", () => pinForm(m)),
      button("History", "history", () => historyPanel(m)),
      manager ? button("Export", "export", () => exportMember(m)) : null);
  }

  async function refresh() {
    const host = document.getElementById("member-list");
    if (!host) return;
    const query = search ? `&search=${encodeURIComponent(search)}` : "";
    let data;
    try { data = await api("GET", `${DOOR}?limit=200${query}`); } catch (err) {
      host.replaceChildren(el("p", { class: "muted" }, err.status === 404 ? "This site has no [door] section: face access and PINs are off." : err.message));
      return;
    }
    host.replaceChildren(data.members.length ? el("table", { class: "members" },
      el("thead", {}, el("tr", {}, ["Member", "Tier", "Membership", "Face consent", "Templates", "PIN", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, data.members.map((m) => el("tr", { "data-member": m.id, "data-consent": m.consent },
        el("td", {}, el("strong", { title: `member id ${m.id}` }, m.name)),
        el("td", {}, m.tier),
        el("td", {}, m.active ? badge("active", "ok") : badge("inactive", "bad")),
        el("td", {}, badge(m.consent, CONSENT[m.consent]), m.consent_since ? el("span", { class: "muted small" }, ` since ${day(m.consent_since)}`) : null),
        el("td", { "data-role": "templates" }, String(m.templates)),
        el("td", {}, m.pin ? badge("set", "ok") : el("span", { class: "muted" }, "—")),
        el("td", {}, actions(m))))))
      : el("p", { class: "muted" }, "No members match."));
  }

  async function render(page) {
    me = me || await api("GET", "/api/v1/me").catch(() => null);
    const box = el("input", { type: "search", id: "member-search", placeholder: "Search name or email", "aria-label": "Search members", value: search });
    let timer = null;
    box.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { search = box.value.trim(); refresh(); }, 200); });
    page.replaceChildren(
      el("div", { class: "page-head" }, el("h1", {}, "Members"), el("span", { class: "muted" }, "Face access is opt-in: consent first, then enroll")),
      el("div", { class: "toolbar" }, box),
      el("section", { id: "member-panel", class: "card member-panel hidden", "aria-live": "polite" }),
      el("div", { id: "member-list" }));
    await refresh();
  }

  dash.register({ id: "members", label: "Members", render });
})();
