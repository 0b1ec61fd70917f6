// Stream names live in the protocol package (one place builds and parses them); the hub's older
// names stay as aliases.
export { deviceOfStream as deviceOf, isDeviceStream } from '@pushwire/protocol';
