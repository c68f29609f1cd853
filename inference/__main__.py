"""Command line of the inference worker: ``python -m inference <command> ...``.

Each command lives in its own package or module, imported only when chosen (torch is slow to
import), and exposes ``configure_parser(parser)`` and ``main(args) -> int`` (the process exit
code).
"""

import argparse
import importlib
import sys

# command -> (module, one-line help)
COMMANDS = {
    "analyze": (".analysis", "estimate 3D poses of everyone in a video, write a trajectory .npz"),
    "weights": (".weights", "list, download, verify and locate model weights"),
    "batch": (".batch", "analyse many clips (folders, patterns) locally or on a Ray cluster"),
    "train": (
        ".training.train",
        "train the crop model: synthetic data, fitting, evaluation, bundles",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported (the others get a stub parser, so
    ``--help`` still lists every command without importing them all)."""
    parser = argparse.ArgumentParser(
        prog="python -m inference", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = commands.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name, __package__)
            module.configure_parser(command_parser)
            command_parser.set_defaults(handler=module.main, usage_error=command_parser.error)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    args, unknown = build_parser(command if command in COMMANDS else None).parse_known_args(argv)
    if unknown:  # the command's parser says so (the worker's also sends an error event)
        args.usage_error(f"unrecognized arguments: {' '.join(unknown)}")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
