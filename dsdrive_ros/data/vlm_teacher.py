"""A vision-language teacher behind an OpenAI-compatible `/v1/chat/completions` endpoint.

DSDrive distils a large VLM (Qwen2.5-VL-max) prompted with X_prompt = [S, Q1, Q2, Q3]: a system prompt
S, then Q1 scene comprehension + key objects, Q2 the driving plan, Q3 the explanation. `VLMTeacher`
sends exactly that to e.g. a local vLLM serving Qwen2.5-VL:

    vllm serve Qwen/Qwen2.5-VL-7B-Instruct --limit-mm-per-prompt '{"image": 4}'
    teacher = VLMTeacher("http://localhost:8000", "Qwen/Qwen2.5-VL-7B-Instruct")
    text = teacher.explain(state, {"front": rgb, "left": rgb, "right": rgb, "rear": rgb})

The user turn holds the navigation instruction and privileged hints (ego speed, speed limit, light
state/distance, junction distance and, by default, the expert's action so the answer never
contradicts it) plus one JPEG data-URL image part per camera (`"<name> camera:"` text before each).

Two conversation modes:
- `conversation=False` (default, 1 request per frame): one user turn asks Q1, Q2, Q3 together and
  wants four lines `Scene:`, `Objects:`, `Plan:`, `Reason:`.
- `conversation=True` (3 requests per frame): Q1 with the images, then Q2 and Q3 as follow-up turns
  with the earlier answers as assistant turns, as in a chain-of-thought dialogue.

Either way `explain` returns one text in the same `Scene: ... Objects: ... Plan: ... Reason: ...`
form as `ScriptedTeacher`, so `actions.action_from_text` reads its plan. No waypoints: the prompt
forbids coordinates and lines mentioning waypoints are dropped.

Standard library only (urllib). Failures raise `VLMError` with the URL and cause: HTTP status + body
excerpt, connection errors, timeouts, malformed JSON, a response without `choices[0].message.content`.
Transient failures (timeouts, connection errors, HTTP 429/5xx) are retried `retries` times.
"""
from __future__ import annotations

import base64
import json
import re
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Mapping, Sequence

import numpy as np

from dsdrive_ros.frames.image_codec import encode_compressed
from dsdrive_ros.sim.scene import SceneState
from dsdrive_ros.data.actions import ACTIONS, action_from_text

SYSTEM_PROMPT = (
    "You are an expert driving instructor. You see the camera views of an autonomous car (front, left, "
    "right, rear) and explain, briefly and concretely, what a careful driver perceives and does next. "
    "Use metres for distances and say where things are relative to the car (ahead, left, right, behind). "
    "Never output coordinates, numeric trajectories or waypoints."
)

Q1 = (
    "Q1. Describe the scene: road type, whether there is a junction, the traffic light state, and the "
    "traffic density. Then name the 1-3 key objects that matter for driving now: what they are, where "
    "they are relative to the car and roughly how far in metres. Answer in two lines starting with "
    "'Scene:' and 'Objects:'."
)
Q2 = (
    "Q2. What is the driving plan now? Answer in one line starting with 'Plan:' followed by exactly one "
    "of: stop, slow down, go, turn left, turn right."
)
Q3 = "Q3. Explain the plan in one short sentence starting with 'Reason:'."

_ACTION_WORDS = {"stop": "stop", "slow": "slow down", "go": "go", "turn left": "turn left", "turn right": "turn right"}


class VLMError(RuntimeError):
    """The VLM endpoint failed or answered something unusable."""


def _data_url(rgb: np.ndarray, quality: int) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(encode_compressed(rgb, "jpeg", quality)).decode("ascii")


def context_text(state: SceneState, hint_action: bool = True) -> str:
    """The privileged-hint text of the user turn."""
    lines = [
        f"Navigation instruction: \"{state.instruction}\".",
        f"Ego speed: {state.speed:.1f} m/s ({state.speed * 3.6:.0f} km/h); speed limit {state.speed_limit * 3.6:.0f} km/h.",
    ]
    if state.light is not None:
        lines.append(f"Traffic light ahead: {state.light.state}, {state.light.distance:.0f} m to the stop line.")
    else:
        lines.append("Traffic light ahead: none.")
    if state.is_junction:
        lines.append("The car is inside a junction.")
    elif state.junction_distance is not None:
        lines.append(f"Next junction: {state.junction_distance:.0f} m ahead.")
    if hint_action:
        lines.append(
            f"The expert driver's action now is: {_ACTION_WORDS.get(state.action, state.action)}. "
            "Your plan must agree with it."
        )
    return "\n".join(lines)


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_LABEL_START = re.compile(r"^\s*(?:\*\*)?\s*(scene|objects?|key objects|plan|driving plan|reason|explanation)\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.I)
_CANON = {"scene": "Scene", "object": "Objects", "objects": "Objects", "key objects": "Objects",
          "plan": "Plan", "driving plan": "Plan", "reason": "Reason", "explanation": "Reason"}


def normalize_answer(text: str) -> str:
    """Clean a model answer into one line of labelled clauses ("Scene: ... Objects: ... Plan: ...").

    Drops <think> blocks, markdown bold, 'Q1.'-style prefixes and lines mentioning waypoints; keeps
    unlabelled text as it is.
    """
    text = _THINK.sub(" ", text or "")
    out: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().lstrip("-*# ").strip()
        line = re.sub(r"^Q\d\.?\s*", "", line)
        if not line or "waypoint" in line.lower():
            continue
        m = _LABEL_START.match(line)
        if m:
            body = line[m.end():].replace("**", "").strip()
            label = _CANON[m.group(1).lower()]
            line = f"{label}: {body}"
        else:
            line = line.replace("**", "")
        if line and line[-1] not in ".!?":
            line += "."
        out.append(line)
    return re.sub(r"\s+", " ", " ".join(out)).strip()


class VLMTeacher:
    """Teacher that asks an OpenAI-compatible chat endpoint (see module docstring)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        cameras: Sequence[str] | None = None,
        conversation: bool = False,
        hint_action: bool = True,
        max_tokens: int = 200,
        temperature: float = 0.2,
        jpeg_quality: int = 85,
        retries: int = 2,
        retry_backoff_s: float = 1.0,
    ):
        base = base_url.rstrip("/")
        if base.endswith("/chat/completions"):
            self.url = base
        elif base.endswith("/v1"):
            self.url = base + "/chat/completions"
        else:
            self.url = base + "/v1/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = float(timeout)
        self.cameras = list(cameras) if cameras is not None else None
        self.conversation = conversation
        self.hint_action = hint_action
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.jpeg_quality = int(jpeg_quality)
        self.retries = max(0, int(retries))
        self.retry_backoff_s = float(retry_backoff_s)
        self.requests_sent = 0

    # -- prompt -------------------------------------------------------------------------------
    def image_parts(self, images: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        cams = self.cameras if self.cameras is not None else list(images)
        missing = [c for c in cams if c not in images]
        if missing:
            raise VLMError(f"images lack cameras {missing}")
        parts: list[dict[str, Any]] = []
        for cam in cams:
            parts.append({"type": "text", "text": f"{cam} camera:"})
            parts.append({"type": "image_url", "image_url": {"url": _data_url(images[cam], self.jpeg_quality)}})
        return parts

    def first_messages(self, state: SceneState, images: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        questions = Q1 if self.conversation else "\n".join((Q1, Q2, Q3)) + (
            "\nAnswer in exactly four lines starting with 'Scene:', 'Objects:', 'Plan:', 'Reason:'; "
            "at most 80 words in total."
        )
        content = [{"type": "text", "text": context_text(state, self.hint_action)}]
        content += self.image_parts(images)
        content.append({"type": "text", "text": questions})
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": content}]

    # -- public -------------------------------------------------------------------------------
    def explain(self, state: SceneState, images: Mapping[str, np.ndarray]) -> str:
        messages = self.first_messages(state, images)
        if not self.conversation:
            return normalize_answer(self.chat(messages))
        answers = []
        for follow_up in (None, Q2, Q3):
            if follow_up is not None:
                messages.append({"role": "user", "content": follow_up})
            answer = self.chat(messages)
            messages.append({"role": "assistant", "content": answer})
            answers.append(answer)
        return normalize_answer("\n".join(answers))

    def agrees(self, text: str, state: SceneState) -> bool:
        """True when the answer's plan states the expert's action."""
        return action_from_text(text) == state.action

    # -- HTTP -----------------------------------------------------------------------------------
    def chat(self, messages: list[dict[str, Any]]) -> str:
        """POST one chat completion, return the assistant text."""
        body = json.dumps({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_backoff_s * attempt)
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            self.requests_sent += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as e:
                detail = e.read()[:500].decode("utf-8", "replace") if e.fp is not None else ""
                last = VLMError(f"{self.url}: HTTP {e.code} {e.reason}: {detail}".strip())
                if e.code == 429 or e.code >= 500:
                    continue
                raise last from None
            except (TimeoutError, socket.timeout) as e:
                last = VLMError(f"{self.url}: timed out after {self.timeout:g} s")
                continue
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last = VLMError(f"{self.url}: timed out after {self.timeout:g} s")
                else:
                    last = VLMError(f"{self.url}: connection failed: {e.reason}")
                continue
            except OSError as e:  # reset connections etc.
                last = VLMError(f"{self.url}: connection failed: {e}")
                continue
            return self._parse(raw)
        assert last is not None
        raise VLMError(f"{last} (after {self.retries + 1} attempts)")

    def _parse(self, raw: bytes) -> str:
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise VLMError(f"{self.url}: malformed JSON in response ({e}): {raw[:200]!r}") from None
        if isinstance(data, dict) and "error" in data and "choices" not in data:
            raise VLMError(f"{self.url}: server error: {data['error']}")
        try:
            content = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise VLMError(f"{self.url}: response has no choices[0].message.content: {str(data)[:200]}") from None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            raise VLMError(f"{self.url}: empty completion")
        return content


__all__ = ["VLMTeacher", "VLMError", "SYSTEM_PROMPT", "Q1", "Q2", "Q3", "context_text", "normalize_answer", "ACTIONS"]
