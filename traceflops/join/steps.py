"""Join, step 0: which profiled steps the analysis keeps."""
from __future__ import annotations

from typing import Optional

import pandas as pd


def select_steps(events: pd.DataFrame, wanted: Optional[int]) -> list:
    """Indices of the complete steps to analyse.

    The first recorded step absorbs the profiler's start-up, so it is skipped
    when more steps than wanted were recorded; then the next `wanted` ones.
    """
    step_rows = events[events["kind"] == "step"].sort_values("start_ps")
    recorded = list(step_rows["step"])
    if wanted is None or len(recorded) <= wanted:
        return recorded
    return recorded[1: wanted + 1]
