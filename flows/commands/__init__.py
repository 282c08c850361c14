"""One module per `ovseg` subcommand: `add_parser(subparsers)` sets `handler=run`."""

SPLIT_HELP = ("split (default: the validation split: validation / val2017 / val for the "
              "benchmarks; for generic, ROOT/images, else ROOT/val)")
"""Help of the --split option of the commands that open a labelled dataset."""
