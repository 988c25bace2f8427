"""The plugin registry: entry-point discovery, per-plugin isolation and name lookup.

Plugins are modules exposed under the ``posefw`` entry-point group (built-ins included) that
implement the hooks in :mod:`posefw.hookspecs`. One broken plugin never stops the others:
import errors and exceptions raised while registering are recorded and shown by
``posefw plugins list`` / ``posefw decoders list``, with a warning.

Switches (environment):
  POSEFW_DISABLE_PLUGINS  comma-separated entry-point or distribution names to skip;
                          ``all`` skips every plugin not shipped in the posefw distribution.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from posefw import hookspecs

GROUP = "posefw"
BUILTIN_DIST = "posefw"


#: Each kind of backend and the hook that registers it.
KINDS = {
    "decoder": "posefw_register_decoders",
    "engine": "posefw_register_engines",
    "frame-source": "posefw_register_frame_sources",
    "box-source": "posefw_register_box_sources",
}


class PluginError(LookupError):
    """A name that no plugin provides, or that is unavailable, broken or ambiguous."""


@dataclass
class PluginRecord:
    """One plugin module as discovered: where it came from and whether it loaded."""

    name: str
    dist: str
    status: str  # "ok", "broken" or "disabled"
    error: str = ""
    provides: list[str] = field(default_factory=list)


@dataclass
class BackendInfo:
    """What ``decoders list`` / ``engines list`` show for one decoder or engine name."""

    kind: str
    name: str
    provider: str
    plugin: str
    status: str  # "available", "unavailable", "broken", "conflict", or "unprobed" until asked
    reason: str = ""
    algorithms: tuple[str, ...] = ()
    device: str = ""
    cls: Any = None

    @property
    def available(self) -> bool:
        return self.status == "available"


def _disabled_names() -> set[str]:
    raw = os.environ.get("POSEFW_DISABLE_PLUGINS", "")
    return {s.strip().lower() for s in raw.split(",") if s.strip()}


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class Registry:
    """Loads plugins and maps decoder/engine names to classes."""

    def __init__(self, entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager(GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginRecord] = {}
        self._backends: dict[str, dict[str, list[BackendInfo]]] | None = None
        if entry_points:
            self.load_entry_points()

    # -- discovery -------------------------------------------------------------------------
    def load_entry_points(self) -> None:
        """Like pluggy's ``load_setuptools_entrypoints``, but each plugin is loaded in isolation."""
        disabled = _disabled_names()
        seen: set[str] = set()
        for ep in metadata.entry_points(group=GROUP):
            dist = ep.dist.name if getattr(ep, "dist", None) is not None else "unknown"
            key = f"{dist}:{ep.name}"
            if key in seen:  # the same distribution seen twice on sys.path
                continue
            seen.add(key)
            # Another distribution may use the same entry-point name: keep both, qualified.
            name = ep.name if ep.name not in self.plugins else f"{ep.name}@{dist}"
            third_party = dist.lower() != BUILTIN_DIST
            if ep.name.lower() in disabled or dist.lower() in disabled or ("all" in disabled and third_party):
                self.plugins[name] = PluginRecord(name, dist, "disabled", "POSEFW_DISABLE_PLUGINS")
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure marks the plugin broken
                self._broken(name, dist, exc)
                continue
            self.register(module, name=name, dist=dist)

    def register(self, plugin: Any, name: str | None = None, dist: str = "local") -> str:
        """Register a plugin object or module (what entry points do; also for tests and apps)."""
        name = name or getattr(plugin, "__name__", None) or repr(plugin)
        try:
            self.pm.register(plugin, name=name)
        except Exception as exc:  # noqa: BLE001 - a malformed hookimpl must not stop the rest
            self._broken(name, dist, exc)
            return name
        self.plugins[name] = PluginRecord(name, dist, "ok")
        self._backends = None
        return name

    def unregister(self, name: str) -> None:
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.plugins.pop(name, None)
        self._backends = None

    def _broken(self, name: str, dist: str, exc: BaseException) -> None:
        msg = _describe(exc)
        self.plugins[name] = PluginRecord(name, dist, "broken", msg)
        warnings.warn(f"posefw: plugin {name!r} from {dist!r} is skipped: {msg}", RuntimeWarning, stacklevel=3)

    # -- collection ------------------------------------------------------------------------
    def _collect(self) -> dict[str, dict[str, list[BackendInfo]]]:
        if self._backends is not None:
            return self._backends
        found: dict[str, dict[str, list[BackendInfo]]] = {kind: {} for kind in KINDS}
        for rec in self.plugins.values():
            rec.provides = []
        for kind, hook_name in KINDS.items():
            hook = getattr(self.pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                record = self.plugins.get(impl.plugin_name) or PluginRecord(impl.plugin_name, "local", "ok")
                try:
                    classes = list(impl.function() or ())
                except Exception as exc:  # noqa: BLE001 - a failing hook marks its plugin broken
                    record.status, record.error = "broken", _describe(exc)
                    warnings.warn(
                        f"posefw: plugin {record.name!r} from {record.dist!r} failed to register: {record.error}",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    continue
                for cls in classes:
                    info = self._info(kind, cls, record)
                    found[kind].setdefault(info.name, []).append(info)
                    record.provides.append(f"{kind}:{info.name}")
        for kind in found:
            for name, infos in found[kind].items():
                if len(infos) > 1:
                    _resolve_conflict(kind, name, infos)
        self._backends = found
        return found

    @staticmethod
    def _info(kind: str, cls: Any, record: PluginRecord) -> BackendInfo:
        """What the class declares; whether it can run here is probed later, only when asked
        (``available()`` may import a GPU stack)."""
        name = getattr(cls, "name", None)
        info = BackendInfo(
            kind, str(name or getattr(cls, "__name__", cls)), record.dist, record.name, "unprobed", cls=cls
        )
        if not isinstance(name, str) or not name:
            info.status, info.reason = "broken", f"{cls!r} has no string attribute 'name'"
            return info
        method, base = _required_method(kind)
        impl = getattr(cls, method, None)
        if not callable(impl) or impl is base:
            info.status, info.reason = "broken", f"{cls.__name__} does not implement {method}()"
            return info
        info.algorithms = tuple(getattr(cls, "algorithms", ()))
        info.device = str(getattr(cls, "device", ""))
        return info

    @staticmethod
    def _probe(info: BackendInfo) -> BackendInfo:
        if info.status != "unprobed":
            return info
        try:
            why = info.cls.available()
        except Exception as exc:  # noqa: BLE001 - available() itself failing is a reason
            why = f"available() raised {_describe(exc)}"
        info.status, info.reason = ("unavailable", str(why)) if why else ("available", "")
        return info

    def backends(self, kind: str) -> list[BackendInfo]:
        """Every registered decoder or engine, plus broken plugins, sorted by name."""
        infos = [self._probe(i) for group in self._collect()[kind].values() for i in group]
        for rec in self.plugins.values():
            if rec.status == "broken" and not rec.provides:
                infos.append(BackendInfo(kind, rec.name, rec.dist, rec.name, "broken", rec.error))
        return sorted(infos, key=lambda i: (i.name, i.provider))

    def get(self, kind: str, name: str) -> type:
        """The class registered under ``name``; PluginError says what exists and why not."""
        infos = self._collect()[kind].get(name)
        if not infos:
            listing = self.listing(kind)
            raise PluginError(f"{kind}: unknown {kind} {name!r}. Installed {kind}s: {listing}")
        info = next((i for i in infos if i.status != "conflict"), infos[0])
        if self._probe(info).status != "available":
            raise PluginError(f"{kind}: {name!r} is {info.status}: {info.reason}")
        return info.cls

    def listing(self, kind: str) -> str:
        parts = []
        for i in self.backends(kind):
            parts.append(i.name if i.available else f"{i.name} ({i.status}: {i.reason})")
        return "; ".join(parts) or "none"

    def create(self, kind: str, name: str, **options: Any) -> Any:
        return self.get(kind, name)(**options)


def _required_method(kind: str) -> tuple[str, Any]:
    """The method a class of this kind must implement, and the base class's (unimplemented) one."""
    if kind == "decoder":
        from posefw.decoder import Decoder

        return "decode", Decoder.decode
    if kind == "engine":
        from posefw.engine import Engine

        return "infer", Engine.infer
    from posefw.streams import BoxSource, FrameSource

    return ("frames", FrameSource.frames) if kind == "frame-source" else ("boxes", BoxSource.boxes)


def _resolve_conflict(kind: str, name: str, infos: list[BackendInfo]) -> None:
    """Two plugins give one name: posefw's own built-in keeps it (with a warning naming the
    other distribution), so a third party cannot break the defaults; between third parties,
    neither is chosen silently."""
    builtin = [i for i in infos if i.provider.lower() == BUILTIN_DIST]
    who = " and ".join(f"{i.provider} (plugin {i.plugin})" for i in infos)
    for i in infos:
        if builtin and i is builtin[0]:
            continue
        i.status, i.reason = "conflict", f"{kind} name {name!r} is registered by both {who}"
        if builtin:
            i.reason += f"; posefw's built-in {name!r} is used"
    if builtin:
        others = ", ".join(i.provider for i in infos if i is not builtin[0])
        warnings.warn(
            f"posefw: {kind} {name!r} is also registered by {others}; posefw's built-in is used "
            "(rename the plugin's one)",
            RuntimeWarning,
            stacklevel=4,
        )


_REGISTRY: Registry | None = None


def get_registry(reload: bool = False) -> Registry:
    """The process-wide registry, built from entry points on first use."""
    global _REGISTRY
    if _REGISTRY is None or reload:
        _REGISTRY = Registry()
    return _REGISTRY


def create_decoder(name: str, **options: Any) -> Any:
    """Instantiate the decoder registered as ``name`` (options go to its constructor)."""
    return get_registry().create("decoder", name, **options)


def create_engine(name: str, **options: Any) -> Any:
    """Instantiate the inference engine registered as ``name``."""
    return get_registry().create("engine", name, **options)


def available_decoders() -> list[BackendInfo]:
    """Name, algorithms, device, availability (or why not) and provider of every decoder."""
    return get_registry().backends("decoder")


def available_engines() -> list[BackendInfo]:
    return get_registry().backends("engine")


def available_sources() -> list[BackendInfo]:
    """Every frame source and box source, with its status."""
    reg = get_registry()
    return reg.backends("frame-source") + reg.backends("box-source")
