"""dsdrive-replay BAG --model-dir DIR --out OUT [--rate R]: run the real node over a rosbag2 bag.

1. reads the bag (mcap or sqlite3) with `rosbags`: camera/<name>/image_raw[/compressed] for the
   model's cameras, instruction (std_msgs/String), odom (nav_msgs/Odometry);
2. starts dsdrive_node in its own process (``python -m dsdrive_ros.node.dsdrive_node --ros-args
   --params-file ... -p model_dir:=...``), waits until it has subscribed (discovery);
3. publishes the bag's messages through rclpy, as the recorded CDR bytes (no re-serialisation),
   on the topics the node subscribes: ``--rate 1`` keeps the recorded timing (real time),
   ``--rate 2`` twice as fast, ``--rate 0`` as fast as the node keeps up (after each complete
   camera set, wait for the node's output before sending the next);
   with ``--clock``, the node runs with ``use_sim_time:=true`` and /clock follows the bag's
   timeline at ``--rate`` (replay/clock.py), as under ``ros2 bag play --clock``;
4. records everything the node publishes (dsdrive/path, dsdrive/plan, dsdrive/reasoning[_stamped],
   dsdrive/markers, /diagnostics) into ``OUT/outputs`` (rosbag2 mcap), stops the node (SIGINT), and
5. writes ``OUT/report.md`` + ``OUT/overlays/*.png`` (report.py) and ``OUT/replay.json``.

Structured for a launch file: the node is started with exactly the arguments a
launch_ros ``Node(package="dsdrive_ros", executable="dsdrive_node", parameters=[...])`` would give
it; ``--no-node`` replays against a node that is already running (e.g. started by
launch/replay.launch.py) and only publishes + records.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from dsdrive_ros.node.process import NodeProcess, private_domain, use_dds_profile
from dsdrive_ros.replay.clock import ClockPublisher, PlaybackClock
from dsdrive_ros.replay.bagio import BagInputs, find_inputs, open_reader, stamp_ns
from dsdrive_ros.replay.recorder import OUTPUT_TOPICS, OutputRecorder

__all__ = ["main", "build_parser", "Replay"]

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="dsdrive-replay", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", type=Path, help="rosbag2 directory (mcap or sqlite3) or .mcap/.db3 file")
    ap.add_argument("--model-dir", type=Path, required=True, help="exported model directory")
    ap.add_argument("--out", type=Path, required=True, help="output folder (outputs bag, report)")
    ap.add_argument("--rate", type=float, default=1.0,
                    help="1 = recorded timing, 2 = twice as fast, 0 = as fast as the node keeps up")
    ap.add_argument("--clock", type=float, nargs="?", const=100.0, default=0.0, metavar="HZ",
                    help="publish /clock from the bag's timeline (HZ times a second, default 100) and "
                         "run the node with use_sim_time:=true; the outputs bag is stamped in bag time")
    ap.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "onnxruntime", "torch"])
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    ap.add_argument("--params-file", type=Path, default=None,
                    help="node parameters (default: config/dsdrive.params.yaml)")
    ap.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                    help="extra node parameter (repeatable), e.g. -p reasoning.max_rate_hz:=2.0")
    ap.add_argument("--transport", default="auto", choices=["auto", "raw", "compressed"],
                    help="which camera topics of the bag to use (auto: raw if complete)")
    ap.add_argument("--startup-timeout", type=float, default=300.0,
                    help="seconds to wait for the node to load the model and subscribe")
    ap.add_argument("--output-timeout", type=float, default=10.0,
                    help="--rate 0: seconds to wait for the node's output for one camera set")
    ap.add_argument("--drain", type=float, default=3.0,
                    help="seconds without new output after the bag ends before stopping")
    ap.add_argument("--overlays", type=int, default=4, help="front-camera overlay PNGs in the report")
    ap.add_argument("--no-node", action="store_true",
                    help="do not start the node (one is already running on this ROS domain)")
    ap.add_argument("--domain-id", type=int, default=None,
                    help="with its own node: the ROS domain of this replay (default: a private one "
                         "from the pid, so that parallel replays or evaluations do not hear each "
                         "other; pass $ROS_DOMAIN_ID to watch it in rviz)")
    ap.add_argument("--no-report", action="store_true", help="skip report.md")
    ap.add_argument("--overwrite", action="store_true", help="replace OUT/outputs if it exists")
    ap.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return ap


class Replay:
    """One replay run (the CLI's logic, usable from Python)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out: Path = args.out
        self.model_dir: Path = args.model_dir.resolve()
        self.node: Optional[NodeProcess] = None  # None with --no-node
        self.summary: dict[str, Any] = {}

    # ---- setup ----

    def _cameras(self) -> list[str]:
        cfg = json.loads((self.model_dir / "config.json").read_text())
        return list(cfg["cameras"])

    def _start_node(self, transport: str) -> None:
        a = self.args
        params = [f"image_transport:={transport}", f"backend:={a.backend}", f"precision:={a.precision}"]
        if a.clock:
            params.append("use_sim_time:=true")
        self.node = NodeProcess(self.model_dir, self.out, params + list(a.param),
                                a.params_file.resolve() if a.params_file else None)
        self.summary["node_command"] = self.node.command

    def _node_tail(self, n: int = 3000) -> str:
        return self.node.log_tail(n) if self.node is not None else ""

    def _node_alive(self) -> bool:
        return self.node is None or self.node.alive()

    def _stop_node(self) -> Optional[int]:
        return self.node.stop() if self.node is not None else None

    # ---- run ----

    def run(self) -> int:
        a = self.args
        if not (self.model_dir / "config.json").is_file():
            print(f"dsdrive-replay: {self.model_dir}/config.json not found", file=sys.stderr)
            return 2
        self.out.mkdir(parents=True, exist_ok=True)
        outputs = self.out / "outputs"
        if outputs.exists():
            if not a.overwrite:
                print(f"dsdrive-replay: {outputs} exists (use --overwrite)", file=sys.stderr)
                return 2
            shutil.rmtree(outputs)
        cameras = self._cameras()
        reader = open_reader(a.bag)
        reader.open()
        try:
            try:
                inputs = find_inputs(reader, cameras, a.transport)
            except ValueError as exc:
                print(f"dsdrive-replay: {exc}", file=sys.stderr)
                return 2
            return self._run(reader, inputs, cameras, outputs)
        finally:
            reader.close()

    def _run(self, reader: Any, inputs: BagInputs, cameras: list[str], outputs: Path) -> int:
        from dsdrive_ros.node.background import BackgroundNode
        from dsdrive_ros.node.topics import TOPICS, camera_topic
        from dsdrive_ros.node.qos import instruction_qos, output_qos

        a = self.args
        t_start = time.monotonic()
        if a.domain_id is not None or not a.no_node:  # with --no-node: the shell's domain
            private_domain(a.domain_id)
        self.summary["dds_profile"] = use_dds_profile()  # this publisher's images need it most
        if not a.no_node:
            self._start_node(inputs.transport)
        ros = BackgroundNode("dsdrive_replay")
        node = ros.node
        rec = OutputRecorder(outputs)
        clock: Optional[ClockPublisher] = None
        if a.clock:
            clock = ClockPublisher(node, PlaybackClock(a.rate), a.clock)
            rec.clock = clock.clock.now_ns
        rec.open()
        rc = 0
        sent: dict[str, int] = {}
        timeouts = 0
        sets = 0
        e2e_ms: list[float] = []
        try:
            from diagnostic_msgs.msg import DiagnosticArray
            from nav_msgs.msg import Odometry
            from nav_msgs.msg import Path as PathMsg
            from sensor_msgs.msg import CompressedImage, Image
            from std_msgs.msg import String
            from visualization_msgs.msg import MarkerArray

            from dsdrive_ros.msg import DrivingPlan, Reasoning

            types = {"/dsdrive/path": PathMsg, "/dsdrive/plan": DrivingPlan,
                     "/dsdrive/reasoning": String, "/dsdrive/reasoning_stamped": Reasoning,
                     "/dsdrive/markers": MarkerArray, "/diagnostics": DiagnosticArray}
            subs = {t: ros.subscribe(t, types[t], output_qos(50), raw=True, on_msg=rec.callback(t))
                    for t in OUTPUT_TOPICS}
            img_type = CompressedImage if inputs.transport == "compressed" else Image
            pubs: dict[int, tuple[str, Any]] = {}  # connection id -> (topic, publisher)
            cam_pubs = {}
            for cam, conn in inputs.cameras.items():
                topic = "/" + camera_topic(cam, inputs.transport)
                cam_pubs[cam] = node.create_publisher(img_type, topic, output_qos(4))
                pubs[conn.id] = (cam, cam_pubs[cam])
            if inputs.instruction is not None:
                pubs[inputs.instruction.id] = ("instruction", node.create_publisher(
                    String, "/" + TOPICS["instruction"], instruction_qos()))
            if inputs.odom is not None:
                pubs[inputs.odom.id] = ("odom", node.create_publisher(
                    Odometry, "/" + TOPICS["odom"], output_qos(5)))

            # ---- discovery: the node subscribed to every camera and we see its outputs ----
            deadline = time.monotonic() + a.startup_timeout
            while time.monotonic() < deadline:
                if not self._node_alive():
                    print(f"dsdrive-replay: the node exited during startup "
                          f"(code {self.node.proc.returncode}):\n{self._node_tail()}", file=sys.stderr)
                    return 1
                if (all(p.get_subscription_count() > 0 for p in cam_pubs.values())
                        and subs["/dsdrive/path"].get_publisher_count() > 0
                        and (clock is None or clock.subscription_count() > 0)):
                    break
                time.sleep(0.05)
            else:
                print(f"dsdrive-replay: node not ready after {a.startup_timeout} s:\n{self._node_tail()}",
                      file=sys.stderr)
                return 1
            time.sleep(0.3)  # let the remaining endpoints (instruction, odom) match too
            if clock is not None:
                clock.start(reader.start_time)

            rc, sent, sets, timeouts, e2e_ms = self._publish(reader, inputs, cameras, pubs, rec, clock)

            # ---- drain: wait until outputs stop coming ----
            quiet_since = time.monotonic()
            last_count = -1
            while time.monotonic() - quiet_since < a.drain and self._node_alive():
                with rec.lock:
                    n = sum(rec.counts[t] for t in ("/dsdrive/path", "/dsdrive/reasoning"))
                if n != last_count:
                    last_count, quiet_since = n, time.monotonic()
                time.sleep(0.1)
            if not self._node_alive():
                print(f"dsdrive-replay: the node died during the replay:\n{self._node_tail()}",
                      file=sys.stderr)
                rc = 1
        except KeyboardInterrupt:
            print("dsdrive-replay: interrupted", file=sys.stderr)
            rc = 130
        finally:
            node_rc = self._stop_node()
            if clock is not None:
                clock.stop()
            ros.close()
            rec.close()

        with rec.lock:
            counts = dict(rec.counts)
        self.summary.update({
            "bag": str(a.bag), "model_dir": str(self.model_dir), "rate": a.rate,
            "clock_hz": a.clock, "clock_messages": clock.published if clock is not None else 0,
            "transport": inputs.transport, "cameras": cameras,
            "sent": sent, "camera_sets": sets, "sets_without_output": timeouts,
            "received": counts, "node_exit_code": node_rc,
            "end_to_end_ms": e2e_ms, "wall_s": time.monotonic() - t_start,
        })
        (self.out / "replay.json").write_text(json.dumps(self.summary, indent=1))
        if node_rc not in (None, 0) and rc == 0:
            print(f"dsdrive-replay: the node exited with code {node_rc}:\n{self._node_tail()}",
                  file=sys.stderr)
            rc = 1
        print(f"dsdrive-replay: sent {sum(sent.values())} messages ({sets} camera sets), received "
              f"{counts.get('/dsdrive/path', 0)} paths, {counts.get('/dsdrive/reasoning', 0)} "
              f"reasoning texts -> {outputs}")
        if not a.no_report:
            from dsdrive_ros.replay.report import write_report

            report = write_report(a.bag, self.out, model_dir=self.model_dir, n_overlays=a.overlays)
            print(f"dsdrive-replay: report {report}")
        return rc

    def _publish(self, reader: Any, inputs: BagInputs, cameras: list[str],
                 pubs: dict[int, tuple[str, Any]], rec: OutputRecorder, clock: Optional[ClockPublisher]):
        """Publish the bag's inputs; returns (rc, sent counts, camera sets, sets without output, e2e ms)."""
        a = self.args
        conns = inputs.connections()
        total = sum(c.msgcount for c in conns)
        progress = None
        if not a.no_progress:
            try:
                from tqdm import tqdm

                progress = tqdm(total=total, unit="msg", desc="replay", dynamic_ncols=True)
            except ImportError:
                pass
        anchor = cameras[0]
        anchor_conn = inputs.cameras[anchor].id
        cam_conn_ids = {c.id for c in inputs.cameras.values()}
        sent: dict[str, int] = {}
        pending: set[str] = set()
        tick_anchor_ns: Optional[int] = None
        sets = timeouts = 0
        e2e_ms: list[float] = []
        send_ns: dict[int, int] = {}
        t0_bag: Optional[int] = None
        t0_wall = time.monotonic()
        first_output = True
        rc = 0
        try:
            for conn, t_bag, raw in reader.messages(connections=conns):
                if not self._node_alive():
                    rc = 1
                    break
                if clock is not None:
                    clock.clock.hold(t_bag)  # /clock runs up to this message while we wait for it
                if a.rate > 0:
                    if t0_bag is None:
                        t0_bag, t0_wall = t_bag, time.monotonic()
                    wait = t0_wall + (t_bag - t0_bag) / 1e9 / a.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                role, pub = pubs[conn.id]
                if conn.id == anchor_conn:
                    try:
                        tick_anchor_ns = stamp_ns(reader.deserialize(raw, conn.msgtype))
                        send_ns.setdefault(tick_anchor_ns, time.time_ns())
                    except Exception:  # noqa: BLE001 - a broken message is the node's to reject
                        tick_anchor_ns = None
                if clock is not None:
                    clock.publish_at(t_bag)
                pub.publish(bytes(raw))
                sent[role] = sent.get(role, 0) + 1
                if progress is not None:
                    progress.update(1)
                if conn.id in cam_conn_ids:
                    pending.add(role)
                    if pending >= set(cameras):
                        sets += 1
                        pending.clear()
                        if a.rate == 0:
                            # as fast as the node keeps up: wait for its output for this set
                            timeout = max(a.output_timeout, 60.0) if first_output else a.output_timeout
                            if not self._wait_output(rec, tick_anchor_ns, timeout):
                                timeouts += 1
                            else:
                                first_output = False
        finally:
            if progress is not None:
                progress.close()
        with rec.lock:
            for st, t_send in send_ns.items():
                t_recv = rec.path_recv_ns.get(st)
                if t_recv is not None:
                    e2e_ms.append((t_recv - t_send) / 1e6)
        return rc, sent, sets, timeouts, e2e_ms

    def _wait_output(self, rec: OutputRecorder, stamp: Optional[int], timeout: float) -> bool:
        """Wait until the node published a path for ``stamp`` (or any newer one)."""
        deadline = time.monotonic() + timeout
        with rec.cond:
            while True:
                if stamp is None and rec.path_stamps:
                    return True
                if stamp is not None and rec.path_stamps and max(rec.path_stamps[-5:]) >= stamp:
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or not self._node_alive():
                    return False
                rec.cond.wait(min(left, 0.2))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.rate < 0:
        print("dsdrive-replay: --rate must be >= 0", file=sys.stderr)
        return 2
    return Replay(args).run()


if __name__ == "__main__":
    sys.exit(main())
