// The create page: length presets, the seed controls. Works without it too.
(function () {
  "use strict";
  var form = document.getElementById("create-form");
  if (!form) return;
  var frames = form.querySelector("#id_frames");
  var fps = form.querySelector("#id_fps");
  var seed = form.querySelector("#id_seed");
  var locked = form.querySelector("#id_seed_locked");

  function changed(input) {
    input.dispatchEvent(new Event("input", { bubbles: true }));
  }

  function refreshPresets() {
    var rate = parseFloat(fps.value) || 16;
    form.querySelectorAll("[data-frames]").forEach(function (button) {
      var count = parseInt(button.getAttribute("data-frames"), 10);
      button.setAttribute("aria-pressed", String(count === parseInt(frames.value, 10)));
      var label = button.querySelector("[data-seconds-for]");
      if (label) label.textContent = (count / rate).toFixed(1);
    });
  }

  form.querySelectorAll("[data-frames]").forEach(function (button) {
    button.addEventListener("click", function () {
      frames.value = button.getAttribute("data-frames");
      refreshPresets();
      changed(frames);
    });
  });
  frames.addEventListener("input", refreshPresets);
  fps.addEventListener("input", refreshPresets);

  document.getElementById("seed-randomize").addEventListener("click", function () {
    var values = new Uint32Array(1);
    window.crypto.getRandomValues(values);
    seed.value = String(values[0]);
    locked.checked = true;
    changed(seed);
  });
  seed.addEventListener("input", function () {
    if (seed.value !== "") locked.checked = true;
  });
  refreshPresets();
})();
