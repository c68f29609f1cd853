"""Command line of the inference worker: ``python -m inference <command> ...``.

Each command lives in its own module, imported only when chosen (torch is slow to import), and
exposes ``configure_parser(parser)`` and ``main(args) -> int`` (the process exit code).
"""

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS = {
    "analyze": (".worker", "estimate 3D poses of everyone in a video, write a trajectory .npz"),
    "weights": (".weights", "list, download, verify and locate model weights"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name, __package__)
        command_parser = commands.add_parser(name, help=help_text, description=help_text)
        module.configure_parser(command_parser)
        command_parser.set_defaults(handler=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
