// The desktop module: viewer tokens, the VNC-over-WebSocket bridge and the browser viewer.
// Wiring (controller): const desk = { lookup, rotateNonce, ownOrigins, dial, metrics, secret: newViewerSecret(), limits, log: app.log };
//   buildServer(ctx, { extraRoutes: (c) => desktopRoutes(c, desk) }); const bridge = attachVncBridge(app.server, desk);
//   on shutdown: await bridge.close() before app.close(); on VM stop/pause: bridge.disconnect(vmId).
export { attachVncBridge, CLOSE, parseVncRequest, VNC_ROUTE, type SessionInfo, type VncBridge } from './bridge.js';
export { DEFAULT_DESKTOP_LIMITS, listenOrigins, resolveLimits, type DesktopDeps, type DesktopLimits, type DesktopLog, type DesktopVm } from './deps.js';
export { desktopRoutes, viewUrl } from './routes.js';
export { newViewerSecret, signViewerToken, verifyViewerToken, type TokenCheck, type TokenFailure } from './token.js';
