"""Multi-camera synchronisation: keep-latest per camera, one anchor camera decides the set's stamp.

Pure Python, O(cameras) per frame, no threads or locks (the node locks around it).

Policy (every anchor frame ends in exactly one outcome, so the counters add up):
  * each camera holds at most its newest unconsumed frame; a replaced frame counts as a drop;
  * the held anchor frame is "pending"; the set is emitted as soon as every other camera holds a
    frame within max_skew_ns of the anchor stamp -- on the anchor's arrival, or on the arrival of
    a late non-anchor frame (drivers rarely publish in a fixed order);
  * a pending anchor that can no longer sync (another camera is already past anchor + skew), or
    that is replaced by a newer anchor, is rejected with one reason: `missing` (a camera has never
    delivered since start/reset), `stale_rejects` (a camera's newest frame is older than
    stale_after_ns; `stale.<camera>` counts which), else `skew_rejects`;
  * a stamp going back by more than jump_back_ns (bag loop, sim restart) resets that camera and
    counts `time_jumps` (an anchor jump also discards the others' held frames from the old
    timeline, so the first set after a loop is not rejected); a smaller step back is `out_of_order`, an equal stamp `duplicates`, both
    dropped without touching state.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence


@dataclass
class FrameSet:
    """One synchronised set. frames/stamps are in the model's camera order."""
    stamp_ns: int                     # the anchor camera's stamp: the stamp of everything published
    frames: dict[str, Any]
    stamps: dict[str, int]
    skew_ns: int                      # largest |stamp - anchor stamp| in the set
    # True when a time jump or a gap > stale_after_ns happened since the previous set:
    # temporal state (frame history) should be cleared.
    discontinuity: bool = False


@dataclass
class _Cam:
    held: Optional[tuple[int, Any]] = None   # newest unconsumed (stamp, frame)
    last_ns: Optional[int] = None            # newest stamp accepted, consumed or not


@dataclass
class CameraSync:
    cameras: Sequence[str]
    max_skew_ns: int = 30_000_000
    stale_after_ns: int = 500_000_000
    jump_back_ns: int = 500_000_000
    anchor: Optional[str] = None              # default: the first camera in the model's order
    _cams: dict[str, _Cam] = field(init=False, repr=False)
    _counts: dict[str, int] = field(init=False, repr=False)
    _last_set_ns: Optional[int] = field(init=False, default=None, repr=False)
    _discontinuity: bool = field(init=False, default=False, repr=False)

    def __post_init__(self) -> None:
        self.cameras = list(self.cameras)
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"cameras must be a non-empty list of unique names, got {self.cameras}")
        if self.anchor is None:
            self.anchor = self.cameras[0]
        if self.anchor not in self.cameras:
            raise ValueError(f"anchor {self.anchor!r} is not one of the cameras {self.cameras}")
        if self.max_skew_ns < 0 or self.stale_after_ns <= 0 or self.jump_back_ns < 0:
            raise ValueError("max_skew_ns/jump_back_ns must be >= 0 and stale_after_ns > 0")
        self._cams = {c: _Cam() for c in self.cameras}
        self._counts = dict.fromkeys(
            ("frames", "anchors", "sets", "skew_rejects", "missing", "stale_rejects",
             "time_jumps", "out_of_order", "duplicates"), 0)
        for c in self.cameras:
            self._counts[f"drops.{c}"] = 0
            self._counts[f"stale.{c}"] = 0

    # ---- public ----

    def on_frame(self, camera: str, stamp_ns: int, frame: Any) -> Optional[FrameSet]:
        """Feed one frame; returns a FrameSet when one is complete, else None (reason in counters)."""
        cam = self._cams.get(camera)
        if cam is None:
            raise KeyError(f"unknown camera {camera!r}; expected one of {self.cameras}")
        stamp_ns = int(stamp_ns)
        self._counts["frames"] += 1
        if cam.last_ns is not None:
            if stamp_ns == cam.last_ns:
                self._counts["duplicates"] += 1
                return None
            if stamp_ns < cam.last_ns:
                if cam.last_ns - stamp_ns <= self.jump_back_ns:
                    self._counts["out_of_order"] += 1
                    return None
                # Bag loop / clock reset: forget this camera's past (its held frame is from the
                # "future" now) and tell the consumer to drop temporal state.
                self._counts["time_jumps"] += 1
                self._discontinuity = True
                cam.held = None
                if camera == self.anchor:
                    self._last_set_ns = None
                    # Frames the others hold from the old timeline would doom every new anchor.
                    for other in self._cams.values():
                        if other.held is not None and other.held[0] - stamp_ns > self.jump_back_ns:
                            other.held = None

        if cam.held is not None:
            self._counts[f"drops.{camera}"] += 1
            if camera == self.anchor:  # the pending anchor is abandoned: say why it never synced
                self._reject(cam.held[0])
        cam.held = (stamp_ns, frame)
        cam.last_ns = stamp_ns
        if camera == self.anchor:
            self._counts["anchors"] += 1
        return self._try_emit()

    def counters(self) -> dict[str, int]:
        """Flat copy of the counters for diagnostics ("drops.<cam>", "stale.<cam>" per camera)."""
        return dict(self._counts)

    def stale_cameras(self) -> list[str]:
        """Cameras whose newest stamp is older than stale_after_ns before the newest stamp seen."""
        seen = [c.last_ns for c in self._cams.values() if c.last_ns is not None]
        if not seen:
            return list(self.cameras)
        newest = max(seen)
        return [n for n, c in self._cams.items()
                if c.last_ns is None or newest - c.last_ns > self.stale_after_ns]

    def reset(self) -> None:
        """Forget all frames and stamps (counters are kept)."""
        for c in self._cams.values():
            c.held, c.last_ns = None, None
        self._last_set_ns = None
        self._discontinuity = True

    # ---- internals ----

    def _try_emit(self) -> Optional[FrameSet]:
        anchor = self._cams[self.anchor]
        if anchor.held is None:
            return None
        t0 = anchor.held[0]
        skew = 0
        waiting = False
        for name, cam in self._cams.items():
            if name == self.anchor:
                continue
            if cam.held is None:
                waiting = True
                continue
            d = cam.held[0] - t0
            if d > self.max_skew_ns:
                # Frames only get newer and we keep one per camera: this anchor can never sync.
                self._reject(t0)
                anchor.held = None
                return None
            if d < -self.max_skew_ns:
                waiting = True  # this camera may still deliver a frame close to the anchor
            else:
                skew = max(skew, abs(d))
        if waiting:
            return None

        frames = {n: c.held[1] for n, c in self._cams.items()}
        stamps = {n: c.held[0] for n, c in self._cams.items()}
        for c in self._cams.values():
            c.held = None
        gap = self._last_set_ns is not None and t0 - self._last_set_ns > self.stale_after_ns
        out = FrameSet(t0, frames, stamps, skew, self._discontinuity or gap)
        self._discontinuity = False
        self._last_set_ns = t0
        self._counts["sets"] += 1
        return out

    def _reject(self, t0: int) -> None:
        """Count one reason for an anchor frame at t0 that never made a set."""
        missing = stale = False
        for name, cam in self._cams.items():
            if name == self.anchor:
                continue
            if cam.last_ns is None:
                missing = True
            elif t0 - cam.last_ns > self.stale_after_ns:
                stale = True
                self._counts[f"stale.{name}"] += 1
        if missing:
            self._counts["missing"] += 1
        elif stale:
            self._counts["stale_rejects"] += 1
        else:
            self._counts["skew_rejects"] += 1
