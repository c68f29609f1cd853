"""Command line of the cleaning stage: ``python -m retarget <command> ...``.

Each command lives in its own module, imported only when chosen, and exposes
``configure_parser(parser)`` and ``main(args) -> int`` (the process exit code).
"""

import argparse
import importlib
import logging
import sys

# command -> (module, one-line help)
COMMANDS = {
    "clean": (
        ".clean.cli",
        "clean a trajectory .npz: outliers, gaps, smoothing, floor, foot contacts",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m retarget", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name, __package__)
        command_parser = commands.add_parser(name, help=help_text, description=help_text)
        module.configure_parser(command_parser)
        command_parser.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
