/** The messenger's pure parts: frame codec, handshake bodies, in-flight throttle (docs/adr/0005-messenger.md). */
export * from './frame.ts';
export * from './handshake.ts';
export * from './throttle.ts';
export * from './client-session.ts';
