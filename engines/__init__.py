"""posefw's built-in inference engines; each registers through the ``posefw`` entry points."""
