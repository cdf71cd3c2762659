"""Exit codes of every `smppgw` command, as the README documents them: one home for
the numbers scripts test, shared by `serve` and `admin`."""

EXIT_OK = 0
EXIT_ERROR = 1  # a valid request refused by the server, or the gateway could not start
# Bad arguments or configuration: found by argparse, by the CLI, or by the admin server
# (its answer says "usage": the arguments could not be read, see gateway.admin.server).
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3  # the admin socket cannot be reached
