// The sauna card of the guest tablet: heater on/off, temperature now → target,
// "ready in N min" from the heat-up rate the controller measures, and the
// session time left before the heater guard's auto-off (GET …/guest).
"use strict";

const TabletSauna = (() => {
  const { el } = CoreSync;
  const { t } = TabletI18n;

  // ctx: { dev, send(values), controls(card) }; guest: the heater's entry of /guest.
  function card(id, dev, ctx) {
    const lim = dev.limits;
    const temps = el("div", { class: "sauna-temps", "data-role": "temps" });
    const status = el("div", { class: "sauna-status", "data-role": "ready" });
    const left = el("div", { class: "sauna-left muted", "data-role": "left" });
    const power = el("button", { class: "big sauna-power", "data-role": "power" });
    const minus = el("button", { class: "big secondary", "data-role": "cooler", "data-i18n-label": "cooler" }, "−");
    const plus = el("button", { class: "big secondary", "data-role": "warmer", "data-i18n-label": "warmer" }, "+");
    const notice = el("p", { class: "notice hidden", "data-role": "offline-notice", role: "status" });
    const node = el("div", { class: "control sauna", "data-device": id, "data-heater": "true" },
      el("h3", {}, el("span", {}, dev.name)),
      temps, status, left, el("div", { class: "row" }, minus, power, plus), notice);
    let guest = null;
    let fetchedAt = 0;
    const heating = () => ["heat", "auto"].includes((dev.state || {}).mode);
    const target = () => (dev.state && dev.state.target_c) ?? lim.max_target_c;
    power.addEventListener("click", () => ctx.send(heating()
      ? { mode: "off" } : { mode: "heat", target_c: Math.min(lim.max_target_c, Math.max(lim.min_target_c, target())) }));
    const step = (delta) => ctx.send({
      target_c: Math.min(lim.max_target_c, Math.max(lim.min_target_c, Math.round(target() + delta))),
    });
    minus.addEventListener("click", () => step(-1));
    plus.addEventListener("click", () => step(1));

    node.update = (d) => {
      dev = d;
      const s = d.state || {};
      temps.textContent = t("sauna_now_target", { now: TabletI18n.temp(s.current_c), target: TabletI18n.temp(s.target_c) });
      power.textContent = heating() ? t("sauna_stop") : t("sauna_start");
      power.classList.toggle("secondary", heating());
      node.tick();
      ctx.availability(node, d, notice);
    };
    node.setGuest = (g) => { guest = g; fetchedAt = Date.now(); node.tick(); };
    node.tick = () => {
      if (!heating()) {
        status.textContent = t("sauna_idle");
        left.textContent = "";
        return;
      }
      if (guest && guest.ready) status.textContent = t("sauna_ready");
      else if (guest && guest.ready_in_min) status.textContent = t("sauna_ready_in", { min: guest.ready_in_min });
      else status.textContent = t("sauna_estimating");
      const since = (Date.now() - fetchedAt) / 1000;
      left.textContent = guest && guest.session_left_s !== null
        ? t("sauna_left", { time: TabletI18n.duration(guest.session_left_s - since) }) : "";
    };
    return node;
  }

  return { card };
})();
