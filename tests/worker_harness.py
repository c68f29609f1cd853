"""Run the real ``analyze`` command (parser, worker, files, signals) with the test models of
``tinymodels.py`` instead of the downloadable ones::

    python -m tests.worker_harness [--slow SECONDS] VIDEO -o OUT.npz [analyze options]

``--detector auto`` means the test colour detector here; other values go to the real loader.
``--slow`` makes each pose-estimator call take that long (to interrupt a run mid-way).
"""

import sys
import time

from inference import worker
from inference.__main__ import build_parser
from tests.tinymodels import ColourJointPoseEstimator, PersonColourDetector


class SlowEstimator(ColourJointPoseEstimator):
    def __init__(self, delay_s: float) -> None:
        super().__init__()
        self.delay_s = delay_s

    def estimate(self, frames, boxes, intrinsics):
        time.sleep(self.delay_s)
        return super().estimate(frames, boxes, intrinsics)


def main(argv: list[str]) -> int:
    delay = 0.0
    if argv[:1] == ["--slow"]:
        delay, argv = float(argv[1]), argv[2:]
    args = build_parser("analyze").parse_args(["analyze", *argv])

    def make_detector(settings, device, reporter):
        if settings.detector == "auto":
            return PersonColourDetector()
        return worker.load_detector(settings, device, reporter)

    return worker.run(
        args, make_estimator=lambda s, d: SlowEstimator(delay), make_detector=make_detector
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
