/** A `mailroom` subcommand. `run` returns the exit code; it prints its own errors in words a user can act on. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  run(args: string[]): Promise<number>;
}

/** Thrown for bad command-line input: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
