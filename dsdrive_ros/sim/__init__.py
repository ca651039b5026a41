"""The simulated world and its rendering (SUMO; no policy, no dataset, no scoring here).

- `towns`, `world`: road networks and traffic demand, the SUMO process (`World`), the static map.
- `routes`: routes and their instructions; `ego`: the ego's bicycle model; `scene`: the per-step
  `SceneState` every consumer reads; `observation`: road users read from SUMO.
- `cameras`, `render`: the camera rig and the OpenCV renderer.
- `episode`: one drive (world + route + ego + cameras + a `Policy`, stepped together).
"""
