"""The HTTP request and response of ``posefw serve``, shared by the server and the client.

A request is a JSON object: the frame as ``"image"`` (base64 JPEG or PNG bytes) or as
``"array"`` (base64 raw RGB uint8) with its ``"shape"`` [H, W, 3], and ``"boxes"`` [[x, y, w, h],
...] in pixels. The response holds ``keypoints`` (N, K, 2), ``scores`` (N, K), ``valid`` (N) and
``errors`` for that frame, and ``batch``: how many frames shared the engine call.
A malformed request is refused whole with a 400 and a message naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np

MAX_FRAME_PIXELS = 8192 * 8192


class RequestError(ValueError):
    """What was wrong with a request (answered with HTTP 400)."""


def encode_request(frame: np.ndarray, boxes: Any, jpeg: bool = False, quality: int = 95) -> bytes:
    """The request body for an RGB uint8 frame and its boxes (JPEG-compressed with ``jpeg``)."""
    frame = np.ascontiguousarray(frame)
    body: dict[str, Any] = {"boxes": np.asarray(boxes, float).reshape(-1, 4).tolist()}
    if jpeg:
        import cv2

        ok, buf = cv2.imencode(".jpg", frame[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("frame: OpenCV could not encode it as JPEG")
        body["image"] = base64.b64encode(buf.tobytes()).decode()
    else:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"frame: expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
        body["array"] = base64.b64encode(frame.tobytes()).decode()
        body["shape"] = list(frame.shape)
    return json.dumps(body).encode()


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise RequestError(f"{field}: expected a base64 string, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"{field}: not valid base64 ({exc})") from None


def decode_request(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(frame RGB uint8 (H, W, 3), boxes (N, 4)) from a request body, or RequestError."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RequestError(f"body: expected a JSON object ({exc})") from None
    if not isinstance(data, dict):
        raise RequestError(f"body: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"image", "array", "shape", "boxes"})
    if unknown:
        raise RequestError(f"body: unknown fields {unknown}; expected image or array+shape, and boxes")
    if ("image" in data) == ("array" in data):
        raise RequestError("body: give the frame as exactly one of 'image' (JPEG/PNG) or 'array' (+ 'shape')")
    if "image" in data:
        from posefw.images import decode_image

        try:
            frame = decode_image(_b64(data["image"], "image"), "in the request")
        except ValueError:
            raise RequestError("image: could not be decoded as JPEG or PNG") from None
    else:
        shape = data.get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
            raise RequestError(f"shape: expected [H, W, 3] positive integers, got {shape!r}")
        if shape[2] != 3 or shape[0] * shape[1] > MAX_FRAME_PIXELS:
            raise RequestError(f"shape: expected [H, W, 3] with H*W <= {MAX_FRAME_PIXELS}, got {shape}")
        raw = _b64(data["array"], "array")
        if len(raw) != shape[0] * shape[1] * 3:
            raise RequestError(f"array: {len(raw)} bytes, but shape {shape} needs {shape[0] * shape[1] * 3}")
        frame = np.frombuffer(raw, np.uint8).reshape(shape)
    boxes = data.get("boxes")
    if not isinstance(boxes, list):
        raise RequestError(f"boxes: expected a list of [x, y, w, h], got {type(boxes).__name__}")
    try:
        arr = np.asarray(boxes, dtype=float).reshape(-1, 4) if boxes else np.zeros((0, 4))
    except (TypeError, ValueError):
        raise RequestError("boxes: expected a list of [x, y, w, h] numbers") from None
    if len(arr) != len(boxes):
        raise RequestError("boxes: expected a list of [x, y, w, h] numbers")
    return frame, arr


def encode_result(result: Any, batch: int) -> dict[str, Any]:
    """One frame's PoseResult as the response object (NaN as null)."""
    from posefw.outputs import finite

    return finite(
        {
            "keypoints": result.keypoints.astype(float).tolist(),
            "scores": result.scores.astype(float).tolist(),
            "valid": result.valid.tolist(),
            "errors": list(result.errors),
            "batch": batch,
        }
    )
