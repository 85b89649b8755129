export * from './types.js';
export * from './headers.js';
export * from './common-headers.js';
export * from './build.js';
export * from './size.js';
