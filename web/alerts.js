// Alerts page of the staff dashboard: critical alerts sent to staff channels
// (e-mail, webhook), how often each happened, and the Acknowledge button that
// stops the repeats; each channel's delivery state in words, not colour only.
"use strict";

(() => {
  const { el } = CoreSync;
  const dash = CoreSyncDashboard;
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  async function render(page) {
    const data = await dash.call("GET", "/api/v1/alerts");
    if (!data) return;
    const head = el("h1", {}, "Alerts");
    if (!data.enabled) {
      page.replaceChildren(head, el("p", { class: "muted", "data-role": "alerts-off" },
        "No [alerts] section in the site config: alerts show here and in /metrics only."));
      return;
    }
    const alerts = dash.table([
      ["Alert", (a) => el("span", {}, el("strong", {}, a.kind.replaceAll("_", " ")),
        a.subject ? ` · ${a.subject}` : "")],
      ["Message", (a) => a.message],
      ["Seen", (a) => `${a.count > 1 ? `×${a.count}, ` : ""}${when(a.first_at)}`],
      ["State", (a) => a.acked_by
        ? el("span", { "data-role": "acked" }, `✓ acknowledged by ${a.acked_by}`)
        : el("button", { "data-action": "ack", onclick: async () => {
          if (await dash.call("POST", `/api/v1/alerts/${a.id}/ack`, {})) render(page);
        } }, "Acknowledge")],
    ], data.alerts);
    for (const [i, a] of data.alerts.entries()) alerts.tBodies[0].rows[i].dataset.alert = a.id;
    const channels = dash.table([
      ["Channel", (c) => `${c.id} (${c.type})`],
      ["State", (c) => c.state === "ok" ? "✓ delivering" : `⚠ failing, retry ${when(c.retry_at)}`],
      ["Waiting", (c) => String(c.pending)], ["Sent", (c) => String(c.delivered)],
      ["Last error", (c) => c.last_error || ""],
    ], data.channels);
    page.replaceChildren(head,
      data.alerts.length ? alerts : el("p", { class: "muted" }, "No alerts since the controller started."),
      el("h2", {}, "Channels"), channels,
      el("p", { class: "muted" }, `Repeats of the same alert counted, not sent: ${data.suppressed}.`));
  }

  dash.register({ id: "alerts", label: "Alerts", render,
    onEvent: (msg) => {
      if (msg.type === "alert" || msg.type === "alert_ack") render(document.getElementById("page"));
    } });
})();
