"""The pipeline: studies (simulate -> train -> calibrate -> report) and their parts.

One concept per module: :mod:`.study` (the validated study configuration), :mod:`.runner`
(running it), :mod:`.training` (train and save a run, atomically), :mod:`.calibration`
(the calibration run that produces the report's content), :mod:`.analyses` (the built-in
study analyses), :mod:`.score_study` (a pixel-level problem with a learned score prior),
:mod:`.rim_study` (a plugin's inverse problem solved by a recurrent inference machine),
:mod:`.benchmark` (the accuracy benchmark).  It sits above the report and below the CLI.
"""

from __future__ import annotations

from .calibration import CalibrationResult, calibrate, calibrate_estimator
from .rim_study import RimStudy, is_rim_study, run_rim_study
from .runner import run_study
from .score_study import ScoreStudy, is_score_study, run_score_study
from .study import Study, demo_study_path
from .training import epoch_logger, train_run

__all__ = ["CalibrationResult", "RimStudy", "ScoreStudy", "Study", "calibrate",
           "calibrate_estimator", "demo_study_path", "epoch_logger", "is_rim_study",
           "is_score_study", "run_rim_study", "run_score_study", "run_study", "train_run"]
