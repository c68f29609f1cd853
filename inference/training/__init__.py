"""Training of the offline models, out of the runtime's way (the extension zip leaves this folder
out): ``train.py`` fits the crop model (``python -m inference train``) and ``train_detector.py``
the YOLOX person detector, on datasets in the layout of ``datasets.py``; ``synth/`` makes the
synthetic people they learn from (procedural motion, a ray-cast renderer, an estimator-like error
model), which the tests, benchmarks and the demo's bundled sample clip use as ground truth too.
"""
