"""Run the real ``analyze`` command (parser, worker, files, signals) with the test models of
``tinymodels.py`` instead of the downloadable ones::

    python -m tests.worker_harness [--slow SECONDS] [--frame-model] VIDEO -o OUT.npz [options]

By default the pose estimator is the project's ``inference.poses.PoseEstimator`` (perspective crops,
mapping back to the camera) running the colour-joint crop network; ``--frame-model`` reads the
colours straight from the frame instead (faster, no crops). ``--detector auto`` means the test colour
detector here; other values go to the real loader. ``--slow`` makes each pose-estimator call take
that long (to interrupt a run mid-way).
"""

import sys
import time

from inference import analysis
from inference.__main__ import build_parser
from inference.training.synth.motion import SKELETON
from tests.tinymodels import ColourJointPoseEstimator, PersonColourDetector


class Slow:
    """Wraps an estimator so that every ``estimate`` call takes ``delay_s`` longer."""

    def __init__(self, estimator, delay_s: float) -> None:
        self.estimator, self.delay_s = estimator, delay_s
        self.output_joint_names = SKELETON.joint_names
        self.model_id = "test-colour-joints"

    def estimate(self, frames, boxes, intrinsics):
        time.sleep(self.delay_s)
        return self.estimator.estimate(frames, boxes, intrinsics)


def make_estimator(settings, device: str, frame_model: bool, delay_s: float):
    if frame_model:
        return Slow(ColourJointPoseEstimator(), delay_s)
    from inference.poses import EstimatorConfig, PoseEstimator
    from tests.tinycrop import ColourJointCropModel

    config = EstimatorConfig(num_aug=settings.tta, batch_size=settings.batch_size)
    estimator = PoseEstimator(ColourJointCropModel(192), SKELETON.joint_names, device, config)
    return Slow(estimator, delay_s)


def main(argv: list[str]) -> int:
    delay, frame_model = 0.0, False
    while argv[:1] in (["--slow"], ["--frame-model"]):
        if argv[0] == "--slow":
            delay, argv = float(argv[1]), argv[2:]
        else:
            frame_model, argv = True, argv[1:]
    args = build_parser("analyze").parse_args(["analyze", *argv])

    def make_detector(settings, device, reporter):
        if settings.detector == "auto":
            return PersonColourDetector()
        return analysis.load_detector(settings, device, reporter)

    return analysis.run(
        args,
        make_estimator=lambda settings, device: make_estimator(
            settings, device, frame_model, delay
        ),
        make_detector=make_detector,
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
