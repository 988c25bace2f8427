"""posefw's built-in frame and box sources, registered through the ``posefw`` entry points
exactly as a third party's sources would be."""
