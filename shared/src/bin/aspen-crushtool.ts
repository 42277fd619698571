/**
 * Entry point of `aspen-crushtool` (see crushtool-cli.ts for flags and formats).
 * Launched by shared/bin/aspen-crushtool, or `node --import tsx shared/src/bin/aspen-crushtool.ts`.
 */
import { main } from './crushtool-cli.ts';

process.exitCode = main(
  process.argv.slice(2),
  (s) => process.stdout.write(s),
  (s) => process.stderr.write(s),
);
