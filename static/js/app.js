// Mochi Studio's small amount of page script. Loaded from our origin (CSP: no inline scripts).
(function () {
  "use strict";

  // Timestamps are rendered in UTC as <time datetime="…" data-local>; show them in the
  // viewer's own time zone.
  function localizeTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var style = el.getAttribute("data-local") === "date" ? { dateStyle: "medium" } : { dateStyle: "medium", timeStyle: "short" };
      el.textContent = new Intl.DateTimeFormat(undefined, style).format(when);
      el.title = when.toISOString();
    });
  }

  // Forms that ask before a destructive action: <form data-confirm="Delete this team?">.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) event.preventDefault();
  }, true);

  // <button data-copy="#field"> copies that field's text.
  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-copy]");
    if (!button) return;
    var field = document.querySelector(button.getAttribute("data-copy"));
    if (!field) return;
    var label = button.textContent;
    function say(text) {
      button.textContent = text;
      setTimeout(function () { button.textContent = label; }, 2000);
    }
    // Without clipboard access (an insecure origin, a refused permission) the text is
    // selected instead, ready for Ctrl+C.
    function selectInstead() {
      if (field.select) { field.focus(); field.select(); }
      say("Press Ctrl+C");
    }
    if (!navigator.clipboard) { selectInstead(); return; }
    navigator.clipboard.writeText(field.value || field.textContent).then(function () { say("Copied"); }, selectInstead);
  });

  document.addEventListener("DOMContentLoaded", function () { localizeTimes(document); });
  document.addEventListener("htmx:after:swap", function (event) { localizeTimes(event.target || document); });
})();
