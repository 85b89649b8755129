export * from './schema.js';
export * from './load.js';
export * from './problems.js';
export { receivingConfigJsonSchema } from './json-schema.js';
export { sesProblem, sesWarnings } from './ses-rules.js';
