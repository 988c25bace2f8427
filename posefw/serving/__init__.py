"""Serving posefw on an existing engine: Ray Serve (``posefw serve``) and a Triton model
repository (``posefw export --triton-repo``). posefw writes no server of its own."""
