// Swagger UI on the API's own OpenAPI document, from files this server ships: no network needed.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({
  url: root.dataset.specUrl,
  domNode: root,
  deepLinking: true,
  // The default validator is a web service: offline it would only show a broken badge.
  validatorUrl: null,
  presets: [window.SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
