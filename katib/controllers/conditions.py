"""Condition lists as Katib keeps them (spec api-v1alpha3.md §5.3).

A changed condition is removed and appended at the end, so the last element is what
`kubectl get` shows. Setting the same status with the same reason changes nothing."""
from __future__ import annotations

TRUE, FALSE = "True", "False"


def find(conditions: list[dict] | None, ctype: str) -> dict | None:
    for cond in conditions or ():
        if cond.get("type") == ctype:
            return cond
    return None


def is_true(conditions: list[dict] | None, ctype: str) -> bool:
    cond = find(conditions, ctype)
    return cond is not None and cond.get("status") == TRUE


def set_condition(conditions: list[dict], ctype: str, status: str, reason: str, message: str,
                  now: str) -> bool:
    """Set a condition in place; returns True when the list changed."""
    old = find(conditions, ctype)
    if old is not None and old.get("status") == status and old.get("reason") == reason:
        return False
    new = {"type": ctype, "status": status, "reason": reason, "message": message,
           "lastUpdateTime": now, "lastTransitionTime": now}
    if old is not None and old.get("status") == status:
        new["lastTransitionTime"] = old.get("lastTransitionTime", now)
    conditions[:] = [c for c in conditions if c.get("type") != ctype]
    conditions.append(new)
    return True


def flip_to_false(conditions: list[dict], ctype: str, now: str) -> bool:
    """Turn a True condition False, keeping its reason and message (Running on completion)."""
    old = find(conditions, ctype)
    if old is None or old.get("status") != TRUE:
        return False
    return set_condition(conditions, ctype, FALSE, old.get("reason", ""), old.get("message", ""), now)


def remove(conditions: list[dict], *ctypes: str) -> bool:
    before = len(conditions)
    conditions[:] = [c for c in conditions if c.get("type") not in ctypes]
    return len(conditions) != before


def last_type(conditions: list[dict] | None) -> str:
    return (conditions or [{}])[-1].get("type", "") if conditions else ""


def set_terminal(conditions: list[dict], ctype: str, reason: str, message: str, now: str) -> bool:
    """Set a terminal condition True after flipping Running to False, so the terminal one ends
    the list (`[Created, Running(False), Succeeded(True)]`). Returns True when it changed."""
    old = find(conditions, ctype)
    if old is not None and old.get("status") == TRUE and old.get("reason") == reason:
        return False
    flip_to_false(conditions, "Running", now)
    return set_condition(conditions, ctype, TRUE, reason, message, now)
