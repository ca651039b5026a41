"""The privileged expert's tuning (`Expert`, `ConflictFinder`, the longitudinal and lateral laws)."""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ExpertParams"]


@dataclass
class ExpertParams:
    max_speed: float = 9.0  # m/s cap below the lane limit
    a_lat: float = 2.0  # m/s^2 lateral acceleration in curves
    comfort_decel: float = 2.5  # m/s^2 for the curvature profile
    idm_a: float = 2.0  # IDM max acceleration
    idm_b: float = 3.0  # IDM comfortable deceleration
    idm_T: float = 1.2  # s time headway
    idm_s0: float = 2.5  # m standstill gap (bumper to bumper / to virtual obstacles)
    max_decel: float = 7.0
    yellow_decel: float = 3.5  # stop at yellow if it needs at most this deceleration
    stop_line_margin: float = 1.0  # m between the front bumper and the stop line when stopped
    lateral: str = "cg"  # "cg" (centre tracking with preview) | "pure_pursuit"
    preview_s: float = 0.25
    k_lateral: float = 3.0
    v_soft: float = 1.0
    heading_tau: float = 0.3  # s, fastest heading response the lateral loop asks for
    lookahead_min: float = 3.0
    lookahead_gain: float = 0.3  # s
    lookahead_max: float = 10.0
    horizon_s: float = 6.0  # prediction horizon for yielding
    agent_accel: float = 2.0  # moving vehicles are assumed to possibly accelerate at this rate ...
    agent_vmax: float = 15.0  # ... up to this speed (earliest arrival at a conflict)
    corridor_margin_vehicle: float = 0.8  # m added to both half widths
    corridor_margin_ped: float = 0.5
    ped_kerb_margin: float = 0.15  # pedestrians standing still or walking along our path
    sweep_margin: float = 0.3  # inflation of both boxes when sweeping past a standing agent
    sweep_margin_min: float = 0.1  # ... after `patience_s` at standstill
    patience_s: float = 3.0
    # a leader slower than this in our path through a junction may stop there: wait at the entry
    # until the exit is clear, as for a standing one (a box we entered behind it can deadlock)
    box_slow_leader_mps: float = 3.0
    path_ahead_m: float = 55.0
    yield_buffer_s: float = 1.5  # ego must pass a conflict this much before the other arrives
