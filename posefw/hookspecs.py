"""The pluggy hook specifications: the whole contract between posefw and its plugins."""

from __future__ import annotations

from collections.abc import Iterable

import pluggy

hookspec = pluggy.HookspecMarker("posefw")
hookimpl = pluggy.HookimplMarker("posefw")


@hookspec
def posefw_register_decoders() -> Iterable[type]:
    """Return the decoder classes this plugin provides (see ``posefw.decoder.Decoder``)."""


@hookspec
def posefw_register_engines() -> Iterable[type]:
    """Return the inference engine classes this plugin provides (see ``posefw.engine.Engine``)."""


@hookspec
def posefw_register_frame_sources() -> Iterable[type]:
    """Return the frame source classes this plugin provides (see ``posefw.streams.FrameSource``)."""


@hookspec
def posefw_register_box_sources() -> Iterable[type]:
    """Return the box source classes this plugin provides (see ``posefw.streams.BoxSource``)."""
