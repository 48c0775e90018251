package bufpool

// DebugDefault is the build's poisoning default, for tests.
const DebugDefault = debugDefault
