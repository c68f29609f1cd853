"""Build and validate the extension zip with the tooling bundled in PyPI bpy: ``python
tools/build_extension.py OUT_DIR``. Prints the zip's path."""

import subprocess
import sys
from pathlib import Path

import bpy

REPO = Path(__file__).resolve().parents[1]


def blender_ext_cli() -> Path:
    cli = Path(bpy.utils.resource_path("LOCAL")) / "scripts/addons_core/bl_pkg/cli/blender_ext.py"
    if not cli.is_file():
        sys.exit(f"this bpy ships no extension command line at {cli}")
    return cli


def build(out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    cli = str(blender_ext_cli())
    subprocess.run(
        [sys.executable, cli, "build", "--source-dir", str(REPO), "--output-dir", str(out_dir)],
        check=True,
    )
    (zip_path,) = sorted(out_dir.glob("metrabs_mocap-*.zip"))[-1:]
    subprocess.run([sys.executable, cli, "validate", str(zip_path)], check=True)
    return zip_path


if __name__ == "__main__":
    print(build(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
