export {
  AUTOPUSH_SUBPROTOCOL,
  type AutopushErrorCode,
  AutopushProtocolError,
  type ClientMessage,
  decodeClientMessage,
  notificationMessage,
} from './codec.js';
export { type AutopushCounters, type AutopushOptions, AutopushService, deviceIdOfUaid } from './host.js';
export { Inflight } from './inflight.js';
