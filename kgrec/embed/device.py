"""Which device a training stage runs on: ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto``.

``auto`` is ``cuda`` where PyTorch sees a GPU, else ``cpu``. Asking for ``cuda`` on a machine without
one is an error (:class:`~kgrec.errors.OptionError`, exit code 2 on the CLI) that says so (never a silent fall back to the CPU). Every stage records the device it
used in its JSON (``config.device``).
"""

from __future__ import annotations

from kgrec.errors import OptionError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> str:
    """``"auto"`` / ``"cpu"`` / ``"cuda"`` / ``"cuda:N"`` -> the device string to use (``cpu`` or ``cuda:N``)."""
    import torch

    name = (name or "auto").strip().lower()
    if name == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise OptionError(f"device {name!r} asked for, but PyTorch sees no CUDA GPU here (torch {torch.__version__}, "
                             f"built with CUDA {torch.version.cuda or 'none'}): use --device cpu or auto")
        idx = int(name.split(":", 1)[1]) if ":" in name else 0
        if not 0 <= idx < torch.cuda.device_count():
            raise OptionError(f"device {name!r}: only {torch.cuda.device_count()} GPU(s) visible")
        return f"cuda:{idx}"
    raise OptionError(f"unknown device {name!r}; choose from {', '.join(DEVICES)} (or cuda:N)")


def device_info(device: str) -> dict:
    """What the stage's JSON records about the device it ran on."""
    import torch

    info = {"device": device}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(int(device.split(":")[1]))
    return info
