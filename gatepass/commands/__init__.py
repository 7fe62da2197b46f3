"""One module per ``gatepass`` subcommand; see :mod:`gatepass.cli`."""
