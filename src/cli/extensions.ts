// What the controller adds to its core API (desktop bridge, doctor, snapshots). One place wires them.
import type { ControllerHooks } from '../api/controller.js';

export const controllerExtensions: NonNullable<ControllerHooks['extend']> = () => ({ routes: [] });
