// Admin pages: htmx requests carry the CSRF token from the page's meta tag, so
// forms that htmx posts pass the same check as the JSON API. No inline scripts.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", function (ev) {
    var m = document.querySelector('meta[name="csrf-token"]');
    if (m) { ev.detail.headers["X-CSRF-Token"] = m.getAttribute("content"); }
  });
})();
