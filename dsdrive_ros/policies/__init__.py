"""What drives the ego in the simulator: policies, each a `sim.episode.Policy` (`reset(info)`,
`act(state, images) -> Control`).

- `expert`: the privileged rule-based expert, composed of `longitudinal` (IDM, stops, the speed
  rollout), `lateral` (steering), `prediction` (where other road users will be) and `conflicts`
  (whom to follow or yield to); its tuning in `expert_params`.
- `waypoint_policies`: policies that produce waypoints and follow them with the PID `controller`
  (constant velocity, the expert's plan; the ROS bridge and the in-process model build on them).
"""
