// Dark or light dashboard: follows the system until staff choose, then
// remembers the choice on this device.
"use strict";

(() => {
  const KEY = "coresync.dashboard.theme";
  const button = document.getElementById("theme-switch");
  const systemDark = window.matchMedia("(prefers-color-scheme: dark)");
  const current = () => document.documentElement.dataset.theme || (systemDark.matches ? "dark" : "light");
  function apply(theme) {
    if (theme) document.documentElement.dataset.theme = theme;
    else delete document.documentElement.dataset.theme;
    button.textContent = current() === "dark" ? "☀ Light mode" : "☾ Dark mode";
    button.setAttribute("aria-pressed", String(current() === "dark"));
  }
  button.addEventListener("click", () => {
    const next = current() === "dark" ? "light" : "dark";
    window.localStorage.setItem(KEY, next);
    apply(next);
  });
  systemDark.addEventListener("change", () => apply(window.localStorage.getItem(KEY)));
  apply(window.localStorage.getItem(KEY));
})();
