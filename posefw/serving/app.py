"""``posefw serve``: the pipeline as a Ray Serve application.

Ray Serve runs the HTTP proxy, the replicas and the placement (``num_replicas``, ``num_gpus``
per replica, across machines when the Ray cluster has them); posefw supplies one deployment.
Requests from many streams are gathered by ``@serve.batch`` into one pipeline call, whose boxes
share the engine's batches. ``GET <route>/stats`` reports the batch sizes the replica formed.
"""

from __future__ import annotations

from typing import Any

from posefw.config import Config, config_from_dict, config_to_dict


def serve_unavailable() -> str | None:
    try:
        from ray import serve  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed: pip install 'posefw[serve]'"
    return None


def build_app(config: Config) -> Any:
    """The Ray Serve application for ``config`` (its [serve] table sets replicas and batching)."""
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    from posefw.serving.protocol import RequestError, decode_request, encode_result

    s = config.serve

    @serve.deployment(
        name="posefw",
        num_replicas=s.num_replicas,
        max_ongoing_requests=s.max_ongoing_requests,
        ray_actor_options={"num_gpus": s.num_gpus, "num_cpus": s.num_cpus},
    )
    class PoseService:
        def __init__(self, tables: dict[str, Any]) -> None:
            from posefw.pipeline import Pipeline

            cfg = config_from_dict(tables, "posefw serve")
            self.pipeline = Pipeline.from_config(cfg)
            self.batch_sizes: list[int] = []
            self.infer.set_max_batch_size(cfg.serve.max_batch_size)
            self.infer.set_batch_wait_timeout_s(cfg.serve.batch_wait_timeout_s)

        @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.005)
        async def infer(self, items: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
            """One pipeline call for every frame Ray gathered; one bad frame errs alone."""
            results = self.pipeline([f for f, _ in items], [b for _, b in items])
            self.batch_sizes.append(len(items))
            return [encode_result(r, len(items)) for r in results]

        async def __call__(self, request: Request) -> JSONResponse:
            if request.method == "GET" and request.url.path.rstrip("/").endswith("/stats"):
                return JSONResponse(
                    {
                        "batch_sizes": self.batch_sizes,
                        "engine": self.pipeline.engine.name,
                        "device": self.pipeline.device,
                    }
                )
            if request.method != "POST":
                return JSONResponse({"error": "POST a frame and its boxes (see docs/serving.md)"}, status_code=405)
            try:
                frame, boxes = decode_request(await request.body())
            except RequestError as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            return JSONResponse(await self.infer((frame, boxes)))

    return PoseService.bind(config_to_dict(config))


def run(config: Config, blocking: bool = True) -> Any:
    """Start Ray (a local one unless RAY_ADDRESS names a cluster) and the application."""
    import ray
    from ray import serve

    s = config.serve
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": s.host, "port": s.port})
    return serve.run(build_app(config), name="posefw", route_prefix=s.route_prefix, blocking=blocking)
