/* Postroom sign-in: posts the form to the session API, then opens the workspace. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("login-form");
  var error = document.getElementById("login-error");
  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    error.textContent = "";
    var body = {user: form.elements.user.value.trim(), password: form.elements.password.value};
    if (!body.user || !body.password) {
      error.textContent = "Enter your user name and password.";
      return;
    }
    try {
      var res = await fetch("/api/v1/auth/login", {
        method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
      });
      if (res.ok) { window.location.assign("/"); return; }
      var data = await res.json().catch(function () { return {}; });
      error.textContent = (data.error && data.error.message) || ("Sign-in failed (" + res.status + ")");
    } catch (e) {
      error.textContent = "Postroom cannot be reached; check your connection.";
    }
  });
});
