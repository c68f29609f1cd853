"""``python -m inference.weights ...``, the same as ``python -m inference weights ...``."""

import argparse
import sys

from .cli import configure_parser, main

parser = argparse.ArgumentParser(prog="python -m inference.weights", description=__doc__)
configure_parser(parser)
sys.exit(main(parser.parse_args()))
