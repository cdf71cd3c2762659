"""Exit codes of every `smppgw` command, as the README documents them: one home for
the numbers scripts test, shared by `serve` and `admin`."""

EXIT_OK = 0
EXIT_ERROR = 1  # refused by the server, or the gateway could not start
EXIT_USAGE = 2  # bad arguments or configuration (argparse exits 2 too)
EXIT_UNREACHABLE = 3  # the admin socket cannot be reached
