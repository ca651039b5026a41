"""SUMO worlds: generated towns (netgenerate + randomTrips), cached per (town, seed), run in-process.

    files = generate_world("grid4", seed=3)           # cached under cache_dir()/grid4_s3/
    with World(files, seed=3) as world:               # starts libsumo, warms traffic up
        world.step()

`World` holds one libsumo simulation (libsumo allows one per process: starting a second `World`
closes the first). `world.static` is the precomputed, read-only map (lanes, junctions, crossings,
traffic-light stop lines, `static_map.py`) that routing, rendering and scoring share.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .static_map import StaticMap
from .towns import NET_COMMON_ARGS, TEST_TOWNS, TOWNS, TRAINING_TOWNS, VAL_TOWNS, TownSpec, town_names

__all__ = [
    "TownSpec", "TOWNS", "TRAINING_TOWNS", "VAL_TOWNS", "TEST_TOWNS", "town_names", "cache_dir", "sumo_home",
    "WorldFiles", "generate_world", "demand_for_net", "World",
]

# ------------------------------------------------------------------------------------------------
# Files and cache


def sumo_home() -> str:
    import sumo  # eclipse-sumo wheel

    return sumo.SUMO_HOME


def _sumo_bin(name: str) -> str:
    p = Path(sumo_home()) / "bin" / name
    return str(p) if p.exists() else name


def cache_dir() -> Path:
    env = os.environ.get("DSDRIVE_SUMO_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "dsdrive_ros" / "sumo"


@dataclass
class WorldFiles:
    town: str
    seed: int
    net: str
    routes: list[str]
    additional: list[str]
    directory: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


# The ego never teleports (timeToTeleport -1; everyone else: --time-to-teleport 60). SUMO counted an
# ego that stood 60 s as stuck and removed it; Episode re-inserted it on top of the car queued behind,
# which scored as a rear-end collision at 60 s, 120 s, ... of standing (not a thing the agent did).
_VTYPES = """<additional>
    <vType id="car" vClass="passenger" length="4.5" width="1.8" height="1.5" accel="2.6" decel="4.5"
           emergencyDecel="9" sigma="0.3" speedFactor="normc(1,0.1,0.8,1.2)" guiShape="passenger"/>
    <vType id="van" vClass="passenger" length="5.2" width="2.0" height="2.2" accel="2.2" decel="4.5"
           emergencyDecel="9" sigma="0.3" speedFactor="normc(0.95,0.1,0.8,1.1)" guiShape="passenger/van"/>
    <vType id="truck" vClass="passenger" length="8.0" width="2.4" height="3.2" accel="1.5" decel="4.0"
           emergencyDecel="9" sigma="0.3" speedFactor="normc(0.9,0.1,0.7,1.0)" guiShape="truck"/>
    <vType id="bus" vClass="passenger" length="11.0" width="2.5" height="3.1" accel="1.2" decel="4.0"
           emergencyDecel="9" sigma="0.3" speedFactor="normc(0.85,0.05,0.7,1.0)" guiShape="bus"/>
    <vType id="moto" vClass="passenger" length="2.2" width="0.8" height="1.5" accel="3.5" decel="6.0"
           emergencyDecel="9" sigma="0.3" speedFactor="normc(1,0.1,0.8,1.2)" guiShape="motorcycle"/>
    <vTypeDistribution id="traffic" vTypes="car van truck bus moto" probabilities="0.72 0.12 0.06 0.03 0.07"/>
    <vType id="walker" vClass="pedestrian" length="0.4" width="0.6" height="1.75" speed="1.3"
           speedFactor="normc(1,0.15,0.6,1.4)"/>
    <vType id="ego" vClass="passenger" length="4.6" width="1.9" height="1.6" accel="3.0" decel="6.0"
           emergencyDecel="9" sigma="0" color="0,0,255" timeToTeleport="-1"/>
</additional>
"""


_DEMAND_VERSION = 1


def _run(cmd: list[str], cwd: str) -> None:
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def _net_road_km(net_file: str) -> float:
    import sumolib

    net = sumolib.net.readNet(net_file)
    total = 0.0
    for e in net.getEdges():
        if e.allows("passenger"):
            total += e.getLength()
    return max(total / 1000.0, 0.1)


def _write_demand(d: str, net: str, seed: int, vehicle_density: float, ped_density: float,
                  end_s: float) -> list[str]:
    tools = os.path.join(sumo_home(), "tools", "randomTrips.py")
    km = _net_road_km(os.path.join(d, net))
    veh_period = 3600.0 / max(vehicle_density * km, 1e-3)
    ped_period = 3600.0 / max(ped_density * km, 1e-3)
    _run([sys.executable, tools, "-n", net, "-o", "vehicles.rou.xml", "-e", str(end_s),
          "-p", f"{veh_period:.3f}", "--validate", "--fringe-factor", "5", "--seed", str(seed),
          "--min-distance", "150", "--trip-attributes", 'type="traffic" departLane="best" departSpeed="max"',
          "-a", "types.add.xml"], cwd=d)
    _run([sys.executable, tools, "-n", net, "-o", "persons.rou.xml", "-e", str(end_s),
          "-p", f"{ped_period:.3f}", "--pedestrians", "--prefix", "p", "--seed", str(seed + 7919),
          "--trip-attributes", 'type="walker"', "--min-distance", "80", "-a", "types.add.xml"], cwd=d)
    for f in os.listdir(d):  # randomTrips leaves these next to the trips
        if f.endswith(".rou.alt.xml") or f == "routes.rou.xml":
            os.remove(os.path.join(d, f))
    return ["vehicles.rou.xml", "persons.rou.xml"]


def _finish_cache_dir(tmp: str, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, final)
    except OSError:  # someone else generated it concurrently: keep theirs
        shutil.rmtree(tmp, ignore_errors=True)


def _files_from_dir(d: Path) -> WorldFiles:
    meta = json.loads((d / "world.json").read_text())
    return WorldFiles(town=meta["town"], seed=meta["seed"], net=str(d / meta["net"]),
                      routes=[str(d / r) for r in meta["routes"]],
                      additional=[str(d / a) for a in meta["additional"]], directory=str(d))


def generate_world(town: str, seed: int = 0, cache: str | os.PathLike | None = None,
                   force: bool = False, end_s: float = 3600.0) -> WorldFiles:
    """Network + demand for a town preset, cached under `cache/<town>_s<seed>/`."""
    if town not in TOWNS:
        raise KeyError(f"unknown town {town!r}; known: {sorted(TOWNS)}")
    spec = TOWNS[town]
    root = Path(cache) if cache is not None else cache_dir()
    # the key includes the generator settings, so changing a preset never reuses stale files
    recipe = json.dumps([spec.net_args, NET_COMMON_ARGS, spec.vehicle_density, spec.ped_density, end_s,
                         spec.seeded_net, spec.net_seed, _VTYPES, _DEMAND_VERSION])
    final = root / f"{town}_s{seed}_{hashlib.sha1(recipe.encode()).hexdigest()[:8]}"
    if (final / "world.json").exists() and not force:
        return _files_from_dir(final)
    if force and final.exists():
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{town}_s{seed}.", dir=root)
    net_seed = seed if spec.seeded_net else spec.net_seed
    _run([_sumo_bin("netgenerate"), *spec.net_args, *NET_COMMON_ARGS, "--seed", str(net_seed),
          "-o", "town.net.xml", "--no-warnings", "true"], cwd=tmp)
    Path(tmp, "types.add.xml").write_text(_VTYPES)
    routes = _write_demand(tmp, "town.net.xml", seed, spec.vehicle_density, spec.ped_density, end_s)
    meta = {"town": town, "seed": seed, "net": "town.net.xml", "routes": routes,
            "additional": ["types.add.xml"], "netgenerate": list(spec.net_args + NET_COMMON_ARGS),
            "sumo_home": sumo_home()}
    Path(tmp, "world.json").write_text(json.dumps(meta, indent=1))
    _finish_cache_dir(tmp, final)
    return _files_from_dir(final)


def demand_for_net(net_file: str | os.PathLike, seed: int = 0,
                   cache: str | os.PathLike | None = None, vehicle_density: float = 300.0,
                   ped_density: float = 60.0, end_s: float = 3600.0) -> WorldFiles:
    """Demand for a user-supplied `.net.xml` (copied into the cache, keyed by its content hash)."""
    net_file = Path(net_file)
    digest = hashlib.sha1(net_file.read_bytes()).hexdigest()[:12]
    root = Path(cache) if cache is not None else cache_dir()
    recipe = json.dumps([vehicle_density, ped_density, end_s, _VTYPES, _DEMAND_VERSION])
    final = root / (f"net-{net_file.name.split('.')[0]}-{digest}_s{seed}_"
                    f"{hashlib.sha1(recipe.encode()).hexdigest()[:8]}")
    if (final / "world.json").exists():
        return _files_from_dir(final)
    root.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".net.", dir=root)
    shutil.copy(net_file, Path(tmp, "town.net.xml"))
    Path(tmp, "types.add.xml").write_text(_VTYPES)
    routes = _write_demand(tmp, "town.net.xml", seed, vehicle_density, ped_density, end_s)
    meta = {"town": f"net:{net_file.name}", "seed": seed, "net": "town.net.xml", "routes": routes,
            "additional": ["types.add.xml"], "source_net": str(net_file.resolve())}
    Path(tmp, "world.json").write_text(json.dumps(meta, indent=1))
    _finish_cache_dir(tmp, final)
    return _files_from_dir(final)


# ------------------------------------------------------------------------------------------------
# The running simulation

_ACTIVE: "World | None" = None


class World:
    """One running SUMO simulation (libsumo, in-process)."""

    def __init__(self, files: WorldFiles, seed: int = 0, step_length: float = 0.1,
                 warmup_s: float = 120.0, sumo_args: tuple[str, ...] = (), start: bool = True):
        self.files = files
        self.seed = int(seed)
        self.step_length = float(step_length)
        self.warmup_s = float(warmup_s)
        self.sumo_args = tuple(sumo_args)
        self._static: StaticMap | None = None
        self._net = None
        self.running = False
        if start:
            self.start()

    @classmethod
    def from_town(cls, town: str, seed: int = 0, cache: str | None = None, **kw) -> "World":
        return cls(generate_world(town, seed, cache), seed=seed, **kw)

    @classmethod
    def from_net(cls, net_file: str, seed: int = 0, cache: str | None = None, **kw) -> "World":
        return cls(demand_for_net(net_file, seed, cache), seed=seed, **kw)

    # -- lifecycle
    @property
    def traci(self):
        import libsumo

        return libsumo

    def command(self) -> list[str]:
        f = self.files
        return [_sumo_bin("sumo"), "-n", f.net, "-r", ",".join(f.routes),
                "-a", ",".join(f.additional), "--step-length", f"{self.step_length:g}",
                "--collision.check-junctions", "true", "--collision.action", "warn",
                "--no-step-log", "true", "--no-warnings", "true", "--seed", str(self.seed),
                "--time-to-teleport", "60", "--time-to-teleport.remove", "true", "--threads", "1",
                "--pedestrian.model", "striping", *self.sumo_args]

    def start(self) -> None:
        global _ACTIVE
        if _ACTIVE is not None and _ACTIVE.running:
            _ACTIVE.close()
        self.traci.start(self.command())
        self.running = True
        _ACTIVE = self
        n = int(round(self.warmup_s / self.step_length))
        for _ in range(n):
            self.traci.simulationStep()

    def close(self) -> None:
        global _ACTIVE
        if self.running:
            try:
                self.traci.close()
            finally:
                self.running = False
                if _ACTIVE is self:
                    _ACTIVE = None

    def __enter__(self) -> "World":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- stepping and queries
    def step(self) -> None:
        self.traci.simulationStep()

    @property
    def time(self) -> float:
        return float(self.traci.simulation.getTime())

    @property
    def static(self) -> StaticMap:
        if self._static is None:
            self._static = StaticMap.from_net(self.files.net)
        return self._static

    @property
    def net(self):
        """sumolib network (static, with internal lanes)."""
        if self._net is None:
            import sumolib

            self._net = sumolib.net.readNet(self.files.net, withInternal=True)
        return self._net

    def tls_states(self) -> dict[str, str]:
        tl = self.traci.trafficlight
        return {t: tl.getRedYellowGreenState(t) for t in tl.getIDList()}

    def describe(self) -> dict:
        return {"town": self.files.town, "seed": self.seed, "net": self.files.net,
                "step_length": self.step_length}


def yaw_from_sumo_angle(angle_deg: float) -> float:
    """SUMO angle (degrees clockwise from north) -> yaw (rad, counter-clockwise from east)."""
    return math.radians(90.0 - angle_deg)


def sumo_angle_from_yaw(yaw: float) -> float:
    return (90.0 - math.degrees(yaw)) % 360.0
