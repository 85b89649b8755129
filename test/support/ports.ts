/** A free TCP port on 127.0.0.1: the same helper `mailroom local` uses. */
export { freeLoopbackPort as freePort } from '../../gateway/local/services.js';
