"""Town presets and their splits: hand-made towns plus procedurally generated ones.

Splits (one name per use, never mixed):
  * ``train``: the model trains on these (4 hand-made towns + ``gen-NN``, ``GENERATED_TRAIN`` of them).
  * ``val``: model selection, tuning of the expert and of recipes. grid5, spider5 and randgrid were
    called "held-out" until stages were selected on them; ``val-rand-N`` are the random nets the
    expert is checked on.
  * ``test``: ``test-NN``. No training, tuning or model selection ever reads them; every closed-loop
    figure that decides something comes from here.

Generated towns draw their network type (grid / spider / random / random lattice), size, lane
counts, junction angles and traffic density from a RNG seeded by their name, so the list is the same
on every machine and adding towns never changes the earlier ones. Each generated town has ONE net
(``net_seed``); world variants only change its traffic.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

__all__ = ["TownSpec", "TOWNS", "TRAINING_TOWNS", "VAL_TOWNS", "TEST_TOWNS", "SPLITS", "town_names",
           "generated_town", "NET_COMMON_ARGS"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class TownSpec:
    name: str
    split: str  # one of SPLITS
    net_args: tuple[str, ...]  # netgenerate arguments (network type and geometry)
    vehicle_density: float = 300.0  # vehicles inserted per hour per km of road (randomTrips)
    ped_density: float = 60.0  # persons inserted per hour per km of road
    seeded_net: bool = False  # the network depends on the world variant (legacy random towns)
    net_seed: int = 0  # netgenerate --seed when the net does not follow the variant
    description: str = ""


NET_COMMON_ARGS = ("--tls.guess", "true", "--tls.guess.threshold", "45", "--sidewalks.guess", "true",
                   "--crossings.guess", "true", "--no-turnarounds", "true", "--junctions.corner-detail",
                   "5", "--default.speed", "13.89", "--default.junctions.radius", "10")

_HAND_MADE: tuple[TownSpec, ...] = (
    TownSpec("grid4", "train", ("--grid", "--grid.number", "4", "--grid.length", "150",
                                "--default.lanenumber", "2"),
             description="4x4 grid, 150 m blocks, 2 lanes, guessed traffic lights"),
    TownSpec("grid3", "train", ("--grid", "--grid.x-number", "3", "--grid.y-number", "4",
                                "--grid.x-length", "120", "--grid.y-length", "90",
                                "--default.lanenumber", "1", "--default-junction-type", "traffic_light"),
             description="3x4 grid, single lanes, every junction signalised"),
    TownSpec("spider", "train", ("--spider", "--spider.arm-number", "6", "--spider.circle-number", "3",
                                 "--spider.space-radius", "70", "--spider.omit-center", "true",
                                 "--default.lanenumber", "1"),
             description="6 arms x 3 rings, 70 m spacing, single lanes"),
    TownSpec("rand", "train", ("--rand", "--rand.iterations", "50", "--rand.min-distance", "70",
                               "--rand.max-distance", "180", "--rand.min-angle", "60",
                               "--rand.bidi-probability", "1", "--default.lanenumber", "1"),
             seeded_net=True, description="random planar network (one per world variant), single lanes"),
    TownSpec("grid5", "val", ("--grid", "--grid.x-number", "5", "--grid.y-number", "4",
                              "--grid.x-length", "110", "--grid.y-length", "170",
                              "--default.lanenumber", "2"),
             description="5x4 grid, 110 x 170 m blocks, 2 lanes (the comparison with earlier releases)"),
    TownSpec("spider5", "val", ("--spider", "--spider.arm-number", "5", "--spider.circle-number", "4",
                                "--spider.space-radius", "60", "--default.lanenumber", "2"),
             description="5 arms x 4 rings, 60 m spacing, 2 lanes, with centre"),
    TownSpec("randgrid", "val", ("--rand", "--rand.grid", "--rand.iterations", "60",
                                 "--rand.min-distance", "100", "--rand.bidi-probability", "1",
                                 "--rand.connectivity", "0.9", "--default.lanenumber", "1"),
             seeded_net=True, description="random connections on a 100 m lattice, single lanes"),
)

# How many generated towns each split holds. Appending raises a count; never reorder or reseed.
GENERATED_TRAIN = 36
GENERATED_TEST = 4
EXPERT_CHECK = 3  # val-rand-N: the `rand` preset on new net seeds; the expert must drive them (DS >= 95)

_KINDS = ("grid", "spider", "rand", "randgrid")


def _fmt(x: float) -> str:
    return f"{x:g}"


def generated_town(name: str, split: str, kind: str | None = None) -> TownSpec:
    """A town drawn from `name` alone: same name, same town, on every machine."""
    rng = random.Random(f"dsdrive-town/{name}")
    kind = kind or rng.choice(_KINDS)
    lanes = rng.choice((1, 1, 2, 2, 3))
    if kind == "grid":
        nx, ny = rng.randint(3, 6), rng.randint(3, 6)
        lx, ly = rng.uniform(80, 200), rng.uniform(80, 200)
        args = ["--grid", "--grid.x-number", str(nx), "--grid.y-number", str(ny),
                "--grid.x-length", _fmt(round(lx)), "--grid.y-length", _fmt(round(ly))]
        desc = f"{nx}x{ny} grid, {lx:.0f} x {ly:.0f} m blocks"
    elif kind == "spider":
        arms, rings = rng.randint(4, 8), rng.randint(2, 4)
        radius = rng.uniform(55, 110)
        args = ["--spider", "--spider.arm-number", str(arms), "--spider.circle-number", str(rings),
                "--spider.space-radius", _fmt(round(radius))]
        if rng.random() < 0.5:
            args += ["--spider.omit-center", "true"]
        desc = f"spider {arms} arms x {rings} rings, {radius:.0f} m"
    else:
        lo = rng.uniform(60, 110)
        args = ["--rand", "--rand.iterations", str(rng.randint(35, 70)),
                "--rand.min-distance", _fmt(round(lo)),
                "--rand.max-distance", _fmt(round(lo + rng.uniform(60, 120))),
                "--rand.min-angle", _fmt(round(rng.uniform(45, 80))), "--rand.bidi-probability", "1"]
        if kind == "randgrid":
            args += ["--rand.grid", "--rand.connectivity", _fmt(round(rng.uniform(0.75, 0.95), 2))]
        desc = f"random {'lattice ' if kind == 'randgrid' else ''}net"
    args += ["--default.lanenumber", str(lanes)]
    if lanes > 1 and rng.random() < 0.5:
        args.append("--random-lanenumber")  # lanes drawn per edge from 1..lanes
        desc += f", 1-{lanes} lanes"
    else:
        desc += f", {lanes} lane{'s' if lanes > 1 else ''}"
    if rng.random() < 0.25:
        args += ["--default-junction-type", "traffic_light"]
        desc += ", every junction signalised"
    veh = round(rng.uniform(150, 450))
    ped = round(rng.uniform(20, 120))
    return TownSpec(name, split, tuple(args), vehicle_density=veh, ped_density=ped,
                    net_seed=rng.randrange(1, 2**31 - 1),
                    description=f"{desc}; {veh} veh/h/km, {ped} ped/h/km")


def _generated() -> list[TownSpec]:
    towns = [generated_town(f"gen-{i:02d}", "train") for i in range(GENERATED_TRAIN)]
    rand = next(t for t in _HAND_MADE if t.name == "rand")
    towns += [replace(rand, name=f"val-rand-{i}", split="val", seeded_net=False, net_seed=1000 + i,
                      description=f"the rand preset's random net on net seed {1000 + i}")
              for i in range(EXPERT_CHECK)]
    towns += [generated_town(f"test-{i:02d}", "test", kind=_KINDS[i % len(_KINDS)])
              for i in range(GENERATED_TEST)]
    return towns


TOWNS: dict[str, TownSpec] = {t.name: t for t in (*_HAND_MADE, *_generated())}
TRAINING_TOWNS = tuple(n for n, s in TOWNS.items() if s.split == "train")
VAL_TOWNS = tuple(n for n, s in TOWNS.items() if s.split == "val")
TEST_TOWNS = tuple(n for n, s in TOWNS.items() if s.split == "test")


def town_names(split: str | None = None) -> list[str]:
    if split is not None and split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; splits: {SPLITS}")
    return [n for n, s in TOWNS.items() if split is None or s.split == split]
