"""One module per `ovseg` subcommand: `add_parser(subparsers)` sets `handler=run`."""
