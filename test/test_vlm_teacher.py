"""VLMTeacher against a local OpenAI-compatible HTTP server started by the test (127.0.0.1, port 0)."""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from dsdrive_ros.frames.image_codec import decode_compressed
from dsdrive_ros.sim.scene import SceneState, TrafficLightAhead
from dsdrive_ros.data.actions import action_from_text
from dsdrive_ros.data.vlm_teacher import SYSTEM_PROMPT, VLMError, VLMTeacher, normalize_answer

CAMS = ("front", "left", "right", "rear")
CANNED = ("Scene: an urban road with a red light 18 m ahead, light traffic.\n"
          "Objects: a red traffic light 18 m ahead; a car 9 m ahead in my lane.\n"
          "Plan: stop.\n"
          "Reason: the light is red and the car ahead is waiting.")


class FakeVLM:
    """Records requests; answers according to `mode`."""

    def __init__(self):
        self.mode = "ok"
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.paths: list[str] = []
        self.errors: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                fake.paths.append(self.path)
                fake.headers.append(dict(self.headers))
                try:
                    body = json.loads(raw)
                except Exception as e:  # noqa: BLE001
                    fake.errors.append(f"bad request json: {e}")
                    body = {}
                fake.requests.append(body)
                mode = fake.mode
                if mode == "slow":
                    time.sleep(1.0)
                if mode == "500":
                    return self._send(500, b'{"error": "boom"}')
                if mode == "400":
                    return self._send(400, b'{"error": "bad image"}')
                if mode == "badjson":
                    return self._send(200, b'{"choices": [ this is not json')
                if mode == "nochoices":
                    return self._send(200, json.dumps({"object": "chat.completion", "choices": []}).encode())
                if mode == "conversation":
                    n_user = sum(1 for m in body.get("messages", []) if m.get("role") == "user")
                    content = {1: CANNED.split("\nPlan:")[0], 2: "Plan: stop.", 3: "**Reason:** the light is red."}[n_user]
                else:
                    content = "<think>let me look</think>\n" + CANNED + "\nWaypoints: [[1.0, 0.0]]"
                resp = {"id": "x", "object": "chat.completion", "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                     "finish_reason": "stop"}]}
                self._send(200, json.dumps(resp).encode())

            def _send(self, code, data):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = FakeVLM()
    yield s
    s.close()


def state(action="stop") -> SceneState:
    return SceneState(step=4, t=0.4, x=0.0, y=0.0, yaw=0.0, speed=4.0, speed_limit=13.9,
                      instruction="Turn left at the next intersection.", instruction_id=2, maneuver="left",
                      end=False, route_progress=0.1, waypoints=[[1.0, 0.0]] * 5, action=action,
                      light=TrafficLightAhead("red", 18.0), junction_distance=20.0)


def images():
    rng = np.random.default_rng(0)
    out = {}
    for k, cam in enumerate(CAMS):
        img = np.zeros((48, 80, 3), np.uint8)
        img[..., k % 3] = 200  # distinct colour per camera
        img[:8] = rng.integers(0, 255, (8, 80, 3), dtype=np.uint8)
        out[cam] = img
    return out


def check_first_request(body, imgs):
    assert body["model"] == "qwen-vl-test"
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = msgs[1]
    assert user["role"] == "user" and isinstance(user["content"], list)
    parts = user["content"]
    image_parts = [p for p in parts if p["type"] == "image_url"]
    assert len(image_parts) == 4
    texts = [p["text"] for p in parts if p["type"] == "text"]
    joined = "\n".join(texts)
    # the instruction and privileged hints are in the text
    assert "Turn left at the next intersection." in joined
    assert "red" in joined and "18 m" in joined and "4.0 m/s" in joined
    assert "Q1" in joined
    # each image is preceded by its camera label and decodes to the camera's picture
    for cam, ip in zip(CAMS, image_parts):
        i = parts.index(ip)
        assert parts[i - 1] == {"type": "text", "text": f"{cam} camera:"}
        url = ip["image_url"]["url"]
        assert url.startswith("data:image/jpeg;base64,")
        img = decode_compressed("jpeg", base64.b64decode(url.split(",", 1)[1]))
        assert img.shape == imgs[cam].shape
        assert np.abs(img[16:].astype(int) - imgs[cam][16:].astype(int)).mean() < 4


def test_single_request_structure_and_answer(server):
    imgs = images()
    t = VLMTeacher(server.url, "qwen-vl-test", api_key="secret", timeout=5)
    text = t.explain(state(), imgs)
    assert server.errors == []
    assert server.paths == ["/v1/chat/completions"]
    assert len(server.requests) == 1
    assert server.headers[0].get("Authorization") == "Bearer secret"
    body = server.requests[0]
    check_first_request(body, imgs)
    joined = "\n".join(p["text"] for p in body["messages"][1]["content"] if p["type"] == "text")
    assert "Q2" in joined and "Q3" in joined
    assert "expert driver's action now is: stop" in joined
    # normalized: think block and waypoint line gone, four labelled clauses on one line
    assert "<think>" not in text and "aypoint" not in text and "[[" not in text
    assert text.startswith("Scene: an urban road") and "Plan: stop." in text and text.endswith("waiting.")
    assert action_from_text(text) == "stop"
    assert t.agrees(text, state("stop")) and not t.agrees(text, state("go"))


def test_conversation_mode_sends_q1_q2_q3_as_turns(server):
    server.mode = "conversation"
    imgs = images()
    t = VLMTeacher(server.url + "/v1", "qwen-vl-test", timeout=5, conversation=True)
    text = t.explain(state(), imgs)
    assert len(server.requests) == 3
    check_first_request(server.requests[0], imgs)
    second = server.requests[1]["messages"]
    assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
    assert second[2]["content"].startswith("Scene:")
    assert "Q2" in second[3]["content"]
    third = server.requests[2]["messages"]
    assert [m["role"] for m in third] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert third[4]["content"] == "Plan: stop." and "Q3" in third[5]["content"]
    assert text.index("Scene:") < text.index("Objects:") < text.index("Plan:") < text.index("Reason:")
    assert "**" not in text and action_from_text(text) == "stop"


def test_http_500_is_retried_then_raises(server):
    server.mode = "500"
    t = VLMTeacher(server.url, "m", timeout=5, retries=1, retry_backoff_s=0.01)
    with pytest.raises(VLMError, match=r"HTTP 500.*boom.*after 2 attempts"):
        t.explain(state(), images())
    assert len(server.requests) == 2


def test_http_400_is_not_retried(server):
    server.mode = "400"
    t = VLMTeacher(server.url, "m", timeout=5, retries=3, retry_backoff_s=0.01)
    with pytest.raises(VLMError, match=r"HTTP 400.*bad image"):
        t.explain(state(), images())
    assert len(server.requests) == 1


def test_malformed_json_raises(server):
    server.mode = "badjson"
    with pytest.raises(VLMError, match="malformed JSON"):
        VLMTeacher(server.url, "m", timeout=5).explain(state(), images())


def test_missing_choices_raises(server):
    server.mode = "nochoices"
    with pytest.raises(VLMError, match=r"choices\[0\]"):
        VLMTeacher(server.url, "m", timeout=5).explain(state(), images())


def test_timeout_raises(server):
    server.mode = "slow"
    t0 = time.monotonic()
    with pytest.raises(VLMError, match="timed out after 0.2 s"):
        VLMTeacher(server.url, "m", timeout=0.2, retries=0).explain(state(), images())
    assert time.monotonic() - t0 < 0.9


def test_connection_refused_raises():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(VLMError, match="connection failed"):
        VLMTeacher(f"http://127.0.0.1:{port}", "m", timeout=2, retries=0).explain(state(), images())


def test_missing_camera_raises(server):
    t = VLMTeacher(server.url, "m", cameras=CAMS)
    imgs = images()
    del imgs["rear"]
    with pytest.raises(VLMError, match="rear"):
        t.explain(state(), imgs)
    assert server.requests == []


def test_normalize_answer():
    raw = "<think>hmm\nPlan: go</think>**Scene:** wide road\n- **Objects**: none\nQ2. Plan: go straight\nwaypoints: [1,2]\nReason: clear"
    assert normalize_answer(raw) == "Scene: wide road. Objects: none. Plan: go straight. Reason: clear."


def test_generate_keeps_only_agreeing_vlm_answers(server):
    from dsdrive_ros.data.build_dataset import _TeacherWithFallback
    from dsdrive_ros.data.teacher import ScriptedTeacher

    vlm = VLMTeacher(server.url, "m", timeout=5, retries=0)
    t = _TeacherWithFallback(vlm, ScriptedTeacher(0), on_error="scripted")
    agree = t.explain(state("stop"), images())  # canned answer says stop
    assert agree.startswith("Scene: an urban road")
    disagree = t.explain(state("go"), images())  # expert says go: scripted text instead
    assert action_from_text(disagree) == "go" and not disagree.startswith("Scene: an urban road")
    server.mode = "500"
    fallback = t.explain(state("slow"), images())
    assert action_from_text(fallback) == "slow"
    assert t.stats == {"main": 1, "disagree": 1, "error": 1}
    strict = _TeacherWithFallback(vlm, ScriptedTeacher(0), on_error="fail")
    with pytest.raises(VLMError):
        strict.explain(state("stop"), images())
