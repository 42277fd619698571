/**
 * Assertions for programmer errors (CONVENTIONS.md item 6). A failed assertion is a bug:
 * it throws an `AssertionFailure`, which daemons treat as fatal. Expected failures
 * (timeouts, bad input, dead peers) must be `AspenError`s instead, never assertions.
 */

/** Thrown by {@link assert}; never caught except at a daemon's top level to crash loudly. */
export class AssertionFailure extends Error {
  override name = 'AssertionFailure';
}

/**
 * Asserts that `condition` holds.
 * @throws AssertionFailure with `message` when it does not.
 */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionFailure(message);
}

/**
 * Marks the unreachable end of an exhaustive `switch` over a union (CONVENTIONS.md item 8).
 * @throws AssertionFailure always, naming the unexpected value.
 */
export function assertNever(value: never, what = 'value'): never {
  throw new AssertionFailure(`unexpected ${what}: ${JSON.stringify(value)}`);
}
