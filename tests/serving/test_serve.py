"""``posefw serve`` on a local Ray, the torch engine on the CPU: a bounded load test on localhost."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from posefw.serving.protocol import RequestError, decode_request, encode_request

CONFIG = """
[engine]
name = "torch"
[engine.options]
size = "s"
device = "cpu"
[serve]
port = {port}
num_cpus = 1.0
max_batch_size = 8
batch_wait_timeout_s = 0.05
"""


def test_protocol_round_trip_and_named_errors():
    frame = np.random.default_rng(0).integers(0, 255, (37, 53, 3), dtype=np.uint8)
    got, boxes = decode_request(encode_request(frame, [[1, 2, 3, 4]]))
    assert np.array_equal(got, frame) and boxes.tolist() == [[1, 2, 3, 4]]
    pytest.importorskip("cv2")
    smooth = np.zeros((64, 80, 3), np.uint8)
    smooth[..., 0] = np.linspace(0, 250, 80)  # red grows left to right: a channel swap would show
    smooth[..., 2] = 40
    jpeg, _ = decode_request(encode_request(smooth, [], jpeg=True))
    assert jpeg.shape == smooth.shape and np.abs(jpeg.astype(int) - smooth).mean() < 3
    bad = {
        b"[1]": "body: expected a JSON object",
        b'{"boxes": []}': "exactly one of",
        b'{"array": "AAAA", "shape": [2, 2, 3], "boxes": []}': "array: 3 bytes",
        b'{"array": "!!", "shape": [1, 1, 3], "boxes": []}': "array: not valid base64",
        b'{"array": "AAAA", "shape": [1, 1], "boxes": []}': "shape: expected [H, W, 3]",
        b'{"image": "AAAA", "boxes": []}': "image: could not be decoded",
        b'{"array": "AAAA", "shape": [1, 1, 3], "boxes": [[1, 2]]}': "boxes: expected a list of [x, y, w, h]",
        b'{"array": "AAAA", "shape": [1, 1, 3], "boxes": [], "extra": 1}': "unknown fields ['extra']",
    }
    for body, message in bad.items():
        with pytest.raises(RequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
            decode_request(body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_serve_load_test_batches_and_matches_the_pipeline(tmp_path, coco_mini):
    pytest.importorskip("ray.serve")
    import ray
    from ray import serve

    from posefw.config import load_config
    from posefw.pipeline import Pipeline
    from posefw.serving.app import run
    from posefw.serving.client import PoseClient, ServeError
    from posefw.testing.videos import coco_frames

    port = _free_port()
    cfg_path = tmp_path / "serve.toml"
    cfg_path.write_text(CONFIG.format(port=port))
    cfg = load_config(cfg_path)
    frames = [(f, b[:1]) for f, b in coco_frames(6, 0, (256, 192))]  # one person each: the CPU engine is slow
    requests = [frames[i % len(frames)] for i in range(16)]  # 8 clients x 2 requests
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        run(cfg, blocking=False)
        client = PoseClient(f"http://127.0.0.1:{port}/")

        def call(item):
            frame, boxes = item
            return client.predict(frame, boxes)

        with ThreadPoolExecutor(8) as pool:
            bad = pool.submit(client.post, b'{"array": "AAAA", "shape": [9, 9, 3], "boxes": []}')
            answers = list(pool.map(call, requests))
            with pytest.raises(ServeError) as err:
                bad.result()
        assert err.value.status == 400 and "array: 3 bytes" in err.value.message
        assert len(answers) == len(requests)  # every request answered
        sizes = client.stats()["batch_sizes"]
        print(f"batch sizes formed by @serve.batch: {sizes}")
        assert sum(sizes) == len(requests) and max(sizes) > 1
        refs = Pipeline.from_config(cfg)([f for f, _ in frames], [b for _, b in frames])  # one call, every frame
        for i, got in enumerate(answers):
            ref = refs[i % len(frames)]
            assert got["valid"].tolist() == ref.valid.tolist() and not got["errors"]
            np.testing.assert_allclose(got["keypoints"], ref.keypoints, atol=1e-3)
    finally:
        serve.shutdown()
        ray.shutdown()
