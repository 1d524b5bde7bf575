// Hangar viewer, the "no token in the address" page (browser, ES module). viewer.js strips the token from the
// address bar and keeps it in this tab's sessionStorage; on a reload the address has none, so the controller
// answers this page. If the tab still holds the VM's token, go back to the viewer with it once: it is removed from
// storage first, so an expired or refused token ends on the error page instead of looping (viewer.js stores it
// again once the page is accepted).
/* global document, location, sessionStorage */
const vmId = document.body.dataset.vm;
let token = null;
try {
  token = vmId ? sessionStorage.getItem(`hangar-viewer:${vmId}`) : null;
  if (token) sessionStorage.removeItem(`hangar-viewer:${vmId}`);
} catch {
  token = null; // storage disabled
}
if (token) {
  document.getElementById('message').textContent = 'Reconnecting…';
  location.replace(`${location.pathname}?token=${encodeURIComponent(token)}`);
}
