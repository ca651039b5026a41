"""The ROS-free Planner: camera frames, instruction and speed in, ``PlanOutput`` out.

``planner`` (``Planner``: sync, keep-latest, preprocessing, the session, ``parse_plan``, frame age,
the reasoning hand-off), ``load`` (the session on a backend; the GPU preprocessor), ``inputs``
(bad-input rules: stamps, image sizes, instruction, odometry; throttled log lines), ``reasoning``
(``ReasoningWorker``, ``LatestSlot``), ``types`` (``PlanStep``, ``FrameTiming``, ``PlannerSnapshot``),
``stats`` (counters, rates, latency percentiles). Used by the node, DAgger, quantization calibration
and the benches. Nothing is imported here: ``dsdrive_ros.planner.planner`` needs only numpy (OpenCV
when it builds its own preprocessor).
"""
