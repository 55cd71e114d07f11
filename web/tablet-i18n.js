// The guest tablet's words: one catalogue per language in /static/i18n/<code>.json
// (a new language is a new file; the controller lists them). Elements with
// data-i18n="key" get the text, data-i18n-label="key" the aria-label.
"use strict";

const TabletI18n = (() => {
  const KEY = "coresync.tablet.lang";
  let lang = "en";
  let region = ""; // from the site's locale: how dates, times and numbers are written
  let words = {};
  let fallback = {};

  async function fetchCatalogue(code) {
    const resp = await fetch(`/static/i18n/${encodeURIComponent(code)}.json`, { credentials: "same-origin" });
    if (!resp.ok) throw new Error(`no catalogue ${code}`);
    return resp.json();
  }

  async function load(code) {
    if (!Object.keys(fallback).length) fallback = await fetchCatalogue("en");
    try {
      words = code === "en" ? fallback : await fetchCatalogue(code);
      lang = code;
    } catch (_) {
      words = fallback;
      lang = "en";
    }
    window.localStorage.setItem(KEY, lang);
    document.documentElement.lang = lang;
    apply(document);
  }

  function preferred() {
    return window.localStorage.getItem(KEY) || (navigator.language || "en").slice(0, 2);
  }

  function t(key, vars = {}) {
    const text = words[key] ?? fallback[key] ?? key;
    return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
  }

  function apply(root) {
    for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    for (const node of root.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
    for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
    document.title = t("page_title");
  }

  // Words in the tablet's language, conventions of the site's region (es + US:
  // "es-US"), times at the site's time zone.
  function setSiteLocale(locale) {
    const parts = String(locale || "").split("-");
    region = parts.length > 1 ? parts[parts.length - 1] : "";
  }
  const locale = () => (region ? `${lang}-${region}` : lang);

  function temp(value) {
    if (value === null || value === undefined) return "–";
    return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(value)} °C`;
  }

  function clock(date, timeZone) {
    const time = new Intl.DateTimeFormat(locale(), { hour: "2-digit", minute: "2-digit", timeZone }).format(date);
    const day = new Intl.DateTimeFormat(locale(), { weekday: "long", day: "numeric", month: "long", timeZone }).format(date);
    return { time, day };
  }

  function duration(seconds) {
    const minutes = Math.max(0, Math.round(seconds / 60));
    const unit = (value, u) => new Intl.NumberFormat(locale(), { style: "unit", unit: u, unitDisplay: "short" }).format(value);
    if (minutes < 60) return unit(minutes, "minute");
    const hours = unit(Math.floor(minutes / 60), "hour");
    return minutes % 60 ? `${hours} ${unit(minutes % 60, "minute")}` : hours;
  }

  return { load, preferred, t, apply, temp, clock, duration, setSiteLocale, locale, get lang() { return lang; }, get name() { return words._language || lang; } };
})();
