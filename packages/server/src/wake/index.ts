export { type ApnsOptions, ApnsSender } from './apns.js';
export { type FcmOptions, FcmSender, parseServiceAccount, type ServiceAccount } from './fcm.js';
export { DEFAULT_WAKE_POLICY, type WakeEvent, type WakePolicy, WakeScheduler } from './scheduler.js';
export { createWakeService, type WakeCounters, type WakeOptions, type WakeService } from './service.js';
export type { WakeClock, WakeResult, WakeSender } from './types.js';
