"""Closed-loop evaluation in the simulator.

- `score`: LangAuto / CARLA-leaderboard arithmetic (RC, IS, DS); `infractions`: collisions and red
  lights, detected every simulation step of an episode.
- `closed_loop`: the ROS bridge (the node drives the simulated car); `cli`: `dsdrive-eval` (its
  outputs in `report`); `diagnose`: a shadowing expert's per-failure counts (`--diagnose`);
  `run_expert`: the privileged expert (or any policy) over N routes of a town.
"""
