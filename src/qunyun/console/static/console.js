// qunyun console: the little script the pages need (served by the app; no inline scripts).
// Every htmx request carries the session's CSRF token, read from <meta name="csrf-token">.
document.addEventListener("htmx:configRequest", function (evt) {
  var meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) { evt.detail.headers["X-CSRF-Token"] = meta.content; }
});
// Buttons and forms with data-confirm ask before they act (forms without htmx too).
document.addEventListener("submit", function (evt) {
  var form = evt.target;
  var text = form.getAttribute && form.getAttribute("data-confirm");
  if (text && !window.confirm(text)) { evt.preventDefault(); }
}, true);
