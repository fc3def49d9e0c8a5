"""The Xid catalogue for a serving fleet: what an Xid means and what the operator does.

Source: NVIDIA's Xid catalogue, NVSentinel's mapping and the k8s device plugin's health
rules. ``drain`` is the only class that justifies taking a node out of service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Remedy = Literal["restart", "drain", "reset", "monitor", "none", "follow_primary"]


@dataclass(frozen=True)
class XidInfo:
    code: int
    meaning: str
    kind: str  # application | hardware | fatal | secondary | warning | contained | pending remap
    remedy: Remedy
    action: str

    @property
    def gpu_is_faulty(self) -> bool:
        return self.remedy in ("drain", "reset")


_CATALOGUE = [
    XidInfo(13, "graphics engine exception", "application", "restart",
            "restart the workload; the GPU is healthy"),
    XidInfo(31, "GPU memory page fault", "application", "restart",
            "restart the workload; the GPU is healthy"),
    XidInfo(32, "corrupted push buffer", "application", "restart", "restart the workload"),
    XidInfo(43, "GPU stopped processing", "application", "none", "none for the GPU"),
    XidInfo(45, "preemptive cleanup after earlier errors", "secondary", "follow_primary",
            "follow the primary Xid"),
    XidInfo(48, "double-bit ECC error", "hardware", "drain",
            "drain the node and reset the GPU; replace it if it recurs"),
    XidInfo(61, "micro-controller breakpoint", "fatal", "reset", "report and reset the GPU"),
    XidInfo(62, "micro-controller halt", "fatal", "reset", "reset the GPU"),
    XidInfo(63, "row-remap recording event", "pending remap", "monitor",
            "reset the GPU when convenient"),
    XidInfo(64, "row-remap failure", "hardware", "drain", "reset the GPU; RMA candidate"),
    XidInfo(68, "engine exception", "application", "restart", "restart the workload"),
    XidInfo(69, "engine exception", "application", "restart", "restart the workload"),
    XidInfo(74, "NVLink error", "hardware", "drain", "drain the node"),
    XidInfo(79, "GPU fell off the bus", "hardware", "drain",
            "drain the node and reboot; RMA if it recurs"),
    XidInfo(92, "high single-bit ECC rate", "warning", "monitor", "monitor"),
    XidInfo(94, "contained ECC error", "contained", "restart",
            "only the affected application dies: restart it; no reset needed"),
    XidInfo(95, "uncontained ECC error", "fatal", "drain", "drain the node and reset the GPU"),
    XidInfo(119, "GSP timeout", "fatal", "reset", "reset the GPU; reboot if it persists"),
    XidInfo(120, "GSP error", "fatal", "reset", "reset the GPU; reboot if it persists"),
    XidInfo(140, "unrecovered ECC error", "hardware", "drain", "drain the node and reset the GPU"),
    XidInfo(143, "GPU initialisation failure", "fatal", "reset", "reset the GPU, then reboot"),
]  # fmt: skip
XID_CATALOGUE: dict[int, XidInfo] = {x.code: x for x in _CATALOGUE}


def decode(code: int) -> XidInfo:
    """The catalogue entry, or a conservative 'investigate' entry for an unlisted code."""
    return XID_CATALOGUE.get(
        code,
        XidInfo(code, "not in the serving catalogue", "unknown", "monitor",
                "look the code up in NVIDIA's Xid catalogue and dmesg"),
    )  # fmt: skip
