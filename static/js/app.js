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

  document.addEventListener("DOMContentLoaded", function () { localizeTimes(document); });
  document.addEventListener("htmx:after:swap", function (event) { localizeTimes(event.target || document); });
})();
