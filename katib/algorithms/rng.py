"""A seeded numpy Generator whose state round-trips through JSON.

PCG64's 128-bit integers are written as decimal strings: JSON numbers that large do not
survive a Kubernetes API server (Go decodes them as float64)."""
from __future__ import annotations

import numpy as np


def make_rng(seed: int | None) -> np.random.Generator:
    """Seeded generator; `None` draws fresh entropy from the OS."""
    return np.random.Generator(np.random.PCG64(seed))


def rng_to_state(rng: np.random.Generator) -> dict:
    state = rng.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": str(state["state"]["state"]),
        "inc": str(state["state"]["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def rng_from_state(saved: dict) -> np.random.Generator:
    if saved.get("bit_generator") != "PCG64":
        raise ValueError(f"unsupported random generator state: {saved.get('bit_generator')!r}")
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(saved["state"]), "inc": int(saved["inc"])},
        "has_uint32": int(saved["has_uint32"]),
        "uinteger": int(saved["uinteger"]),
    }
    return np.random.Generator(bit_generator)


def request_generator(request) -> np.random.Generator:
    """An algorithm's generator for a SuggestRequest: from its state when there is one; else
    seeded by the `random_state` setting, else by request.seed. A lost state with trials already
    made starts a fresh stream (seed, trial count), not a replay of the points handed out."""
    if request.state and "rng" in request.state:
        return rng_from_state(request.state["rng"])
    setting = str(request.settings.get("random_state", "")).strip()
    seed = int(setting) if setting else request.seed
    if seed is not None and request.trials:
        return make_rng([seed, len(request.trials)])
    return make_rng(seed)
