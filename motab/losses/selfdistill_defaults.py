"""The self-distillation losses' named constants and defaults (torch-free: KD's config reads them).

Values from the PW-OPSD release's launchers; motab.losses.selfdistill re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass

COMPATS = ("released", "paper")
REOPOLD_LAMBDA, REOPOLD_BETA, REOPOLD_T_SWITCH = 0.1, 0.2, 50  # the REOPOLD launchers' values


@dataclass(frozen=True)
class PositionSchedule:
    """PW-OPSD position weight w(u) = w_min + (1 - w_min) * sigmoid((u - tau) / s)."""

    w_min: float
    tau: float
    s: float


PW_PRESETS = {
    "moderate": PositionSchedule(w_min=0.25, tau=0.30, s=0.10),  # the release's launchers and paper
    # no launcher or README gives the Aggressive w_min: 0.10 is our choice (config marks it as ours)
    "aggressive": PositionSchedule(w_min=0.10, tau=0.30, s=0.10),
}
