"""``python -m inference batch`` from the source tree, for the Blender tests (the installed extension
has no ``tests/`` for the test analysers): ``python tests/batch_entry.py INPUTS... -o OUT ...``."""

import sys
from pathlib import Path

if __name__ == "__main__":  # the batch's worker processes import this file again
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from inference.__main__ import main

    sys.exit(main(["batch", *sys.argv[1:]]))
