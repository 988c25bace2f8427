"""A small client for ``posefw serve`` (standard library HTTP; OpenCV only to send JPEGs)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from posefw.serving.protocol import encode_request


class ServeError(RuntimeError):
    """The server refused a request (its status and message)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class PoseClient:
    """``PoseClient("http://127.0.0.1:8000/").predict(frame, boxes)`` -> keypoints, scores, valid."""

    def __init__(self, url: str = "http://127.0.0.1:8000/", timeout: float = 60.0) -> None:
        self.url, self.timeout = url, timeout

    def predict(self, frame: np.ndarray, boxes: Any, jpeg: bool = False) -> dict[str, Any]:
        """Poses for the boxes of one RGB frame; keypoints (N, K, 2) and scores (N, K) as arrays."""
        out = self.post(encode_request(frame, boxes, jpeg=jpeg))
        kp = np.asarray(out["keypoints"], dtype=float).reshape(len(out["valid"]), -1, 2)
        sc = np.asarray(out["scores"], dtype=float).reshape(len(out["valid"]), -1)
        return {**out, "keypoints": kp, "scores": sc, "valid": np.asarray(out["valid"], bool)}

    def post(self, body: bytes) -> dict[str, Any]:
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                text = json.loads(text).get("error", text)
            except (json.JSONDecodeError, AttributeError):
                pass
            raise ServeError(exc.code, text) from None

    def stats(self) -> dict[str, Any]:
        """What the replica has batched so far (sizes of the engine calls it made)."""
        with urllib.request.urlopen(self.url.rstrip("/") + "/stats", timeout=self.timeout) as resp:
            return json.loads(resp.read())
