"""The fleet at a glance (``GET /fleet``): Deployments, nodes and their GPUs' faults, the
scenario's ground truth. Pure: the fleet and the time in, JSON-ready data out."""

from __future__ import annotations

from typing import Any

from bot.simulator.fleet import Fleet, Gpu
from bot.simulator.scenarios import GroundTruth


def gpu_faults(gpu: Gpu) -> list[str]:
    """What is wrong with a GPU now, in words (counters that only grow are history)."""
    faults = []
    if gpu.fell_off_bus:
        faults.append("fell off the bus")
    if gpu.xid:
        faults.append(f"Xid {gpu.xid}" + (" (application)" if gpu.xid_held_by_process else ""))
    if gpu.temp_override_c is not None:
        faults.append(f"cooling fault ({gpu.temp_override_c:g} °C under load)")
    return faults


def fleet_view(fleet: Fleet, truth: GroundTruth, now: float) -> dict[str, Any]:
    """``desired``/``ready``/``revision`` come from the cluster (the fleet twin); without
    one, desired and ready are what serves. ``serving``: replicas taking load now."""
    deployments = []
    for name in fleet.deployments:
        replicas = [r for r in fleet.replicas if r.deployment == name]
        serving = sum(r.available(now) for r in replicas)
        workload = fleet.workloads.get(name)
        deployments.append(
            {
                "name": name,
                "namespace": fleet.namespace,
                "model": fleet.models[name],
                "desired": workload.desired if workload else len(replicas),
                "ready": workload.ready if workload else serving,
                "serving": serving,
                "revision": workload.revision if workload else None,
                "image": workload.image if workload else None,
                "pods": sorted(r.pod for r in replicas),
            }
        )
    nodes = [
        {
            "name": node.name,
            "schedulable": node.schedulable,
            "gpus": [
                {
                    "gpu": gpu.index,
                    "pod": gpu.replica.pod if gpu.replica else gpu.reserved_for,
                    "starting": gpu.replica is None and gpu.reserved_for is not None,
                    "faults": gpu_faults(gpu),
                }
                for gpu in node.gpus
            ],
        }
        for node in fleet.nodes
    ]
    return {"deployments": deployments, "nodes": nodes, "scenario": truth.model_dump()}
