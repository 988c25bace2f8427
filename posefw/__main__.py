"""``python -m posefw`` is the ``posefw`` command."""

from posefw.cli import run

run()
