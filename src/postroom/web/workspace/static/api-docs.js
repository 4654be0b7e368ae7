/* Postroom's API page (/api/v1/docs): Swagger UI, served from vendor/ (see
   vendor/VENDORED.md), on the OpenAPI description named by the page. */
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
