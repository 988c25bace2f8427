"""posefw's built-in decoders; each module registers itself through the ``posefw`` entry points."""
