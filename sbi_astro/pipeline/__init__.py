"""The pipeline: studies (simulate -> train -> calibrate -> report) and their parts.

One concept per module: :mod:`.study` (the validated study configuration), :mod:`.runner`
(running it), :mod:`.training` (train and save a run, atomically), :mod:`.calibration`
(the calibration run that produces the report's content), :mod:`.analyses` (the built-in
study analyses).  It sits above the report and below the CLI.
"""

from __future__ import annotations

from .calibration import CalibrationResult, calibrate, calibrate_estimator
from .runner import run_study
from .study import Study, demo_study_path
from .training import epoch_logger, train_run

__all__ = ["CalibrationResult", "Study", "calibrate", "calibrate_estimator", "demo_study_path",
           "epoch_logger", "run_study", "train_run"]
