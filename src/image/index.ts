// The image pipeline's library API (the controller and the CLI use these).
export { buildImage, type BuildImageOptions, type BuildResult } from './build.js';
export { listImages, resolveImage, readImage, type ImageInfo } from './store.js';
export { PROFILES, BASE_CMDLINE, type Profile, type ImageManifest } from './plan.js';
export { lintGate } from './kernel.js';
