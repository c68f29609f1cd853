"""Dev script: reference outputs of the official YOLOX network for ``tests/test_detect_yolox.py``.

Not run by the tests. It needs a checkout of Megvii-BaseDetection/YOLOX (Apache-2.0); the official
model files are imported from that checkout in a throwaway folder with stand-ins for the two imports
that the forward pass never uses (``loguru`` and the training utilities in ``yolox.utils``). Both the
official model and ours get every tensor filled by :func:`fill_from_names` (the same rule on both
sides), so the keys must match one to one and the outputs must agree. Only the small result file is
committed::

    python tests/data/make_yolox_reference.py /path/to/YOLOX  # writes tests/data/yolox_reference.npz
"""

import math
import shutil
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

OUTPUT = Path(__file__).with_name("yolox_reference.npz")
MODEL_FILES = (
    "network_blocks.py",
    "darknet.py",
    "yolo_pafpn.py",
    "yolo_head.py",
    "yolox.py",
    "losses.py",
)
VARIANTS = {"nano": (0.25, 0.33, True), "tiny": (0.375, 0.33, False), "s": (0.50, 0.33, False)}
INPUT_SIDE = 128  # small input keeps the reference file small; the layout does not depend on it
KEEP_ROWS = 64  # predictions stored per image (strided subset of all anchors)


def fill_from_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict with every float tensor filled from its key name and shape (bounded, smooth)."""
    filled = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            filled[key] = tensor.clone()
            continue
        salt = sum(ord(c) * (i + 1) for i, c in enumerate(key)) % 1009
        phase = torch.arange(tensor.numel(), dtype=torch.float64) * 0.618034 + salt * 0.37
        fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
        values = torch.sin(phase) * (1.5 / math.sqrt(fan_in))
        if key.endswith("running_var"):
            values = 0.5 + torch.sin(phase).abs()
        elif key.endswith("running_mean"):
            values = 0.1 * torch.sin(phase)
        elif key.endswith("bn.weight"):
            values = 1.0 + 0.2 * torch.sin(phase)
        elif key.endswith("bias"):
            values = 0.1 * torch.sin(phase)
        filled[key] = values.reshape(tensor.shape).to(tensor.dtype)
    return filled


def reference_input(batch: int = 2) -> torch.Tensor:
    """(B, 3, S, S) BGR 0..255 test pattern."""
    ys, xs = torch.meshgrid(torch.arange(INPUT_SIDE), torch.arange(INPUT_SIDE), indexing="ij")
    images = []
    for b in range(batch):
        channels = [
            127.5 + 127.5 * torch.sin(0.05 * (xs + 3 * c + 7 * b) + 0.03 * ys * (c + 1))
            for c in range(3)
        ]
        images.append(torch.stack(channels))
    return torch.stack(images).float()


def _official_package(repo: Path, folder: Path) -> None:
    models = folder / "yolox" / "models"
    models.mkdir(parents=True)
    (folder / "yolox" / "__init__.py").write_text("")
    (models / "__init__.py").write_text("")
    for name in MODEL_FILES:
        shutil.copy(repo / "yolox" / "models" / name, models / name)
    utils = folder / "yolox" / "utils"
    utils.mkdir()
    shutil.copy(repo / "yolox" / "utils" / "compat.py", utils / "compat.py")
    (utils / "__init__.py").write_text(
        "from .compat import meshgrid\n"
        "def _training_only(*args, **kwargs):\n    raise RuntimeError('training utility')\n"
        "bboxes_iou = cxcywh2xyxy = visualize_assign = _training_only\n"
    )
    sys.modules["loguru"] = types.SimpleNamespace(logger=types.SimpleNamespace(info=print))
    sys.path.insert(0, str(folder))


def main(repo: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _official_package(Path(repo), Path(folder))
        from yolox.models.yolo_head import YOLOXHead
        from yolox.models.yolo_pafpn import YOLOPAFPN
        from yolox.models.yolox import YOLOX

        results = {}
        for name, (width, depth, depthwise) in VARIANTS.items():
            model = YOLOX(
                YOLOPAFPN(depth, width, depthwise=depthwise),
                YOLOXHead(80, width, depthwise=depthwise),
            )
            for module in model.modules():
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eps = 1e-3
            model.load_state_dict(fill_from_names(model.state_dict()), strict=True)
            with torch.no_grad():
                output = model.eval()(reference_input())
            rows = np.linspace(0, output.shape[1] - 1, KEEP_ROWS).round().astype(int)
            results[f"{name}_rows"] = rows
            results[f"{name}_output"] = output[:, rows].numpy()
            results[f"{name}_num_anchors"] = np.array(output.shape[1])
            results[f"{name}_keys"] = np.array(sorted(model.state_dict()))
    np.savez_compressed(OUTPUT, **results)
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main(sys.argv[1])
