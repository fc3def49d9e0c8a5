"""The simulated fleet: replicas (vLLM engines) placed on GPU nodes, and their state over time.

State advances lazily: a replica or node integrates its counters up to ``now`` when it is
scraped, so a large idle fleet costs nothing between scrapes.

The fleet changes at run time: replicas join (on free GPUs of schedulable nodes) and leave
(:meth:`Fleet.join`, :meth:`Fleet.leave`). A Deployment's demand stays what it was: its
load balancer (:class:`Balancer`) spreads it over the replicas serving it, so more replicas
means less load on each, and routes new arrivals away from long queues, so replicas that
join after an overload take most new traffic while the old ones drain theirs. Callers
serialise changes (the simulator's lock).
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.simulator import catalog
from bot.simulator.engine import EngineProfile, EngineState, lognormal_cdf, lognormal_mean, step

CLIENT_TIMEOUT_S = EngineProfile.client_timeout_s  # clients give up on a request after this

REPLICA_PORT = 8000
DCGM_PORT = 9400
WARM_UP_S = 6 * 3600.0  # counters start as if the process had served for hours
VLLM_IMAGE = "vllm/vllm-openai"
CURRENT_VERSION = "v0.11.0"  # what the fleet runs; the rollout before it ran PREVIOUS_VERSION
PREVIOUS_VERSION = "v0.10.2"


class LogNormalHistogram:
    """Cumulative bucket counts fed with expected counts from a log-normal distribution.

    Buckets are exposed as whole numbers (floors of the accumulated expectations), which
    keeps them monotonic across buckets and over time, exactly like a real histogram.
    """

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self._acc = [0.0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, n: float, median: float, sigma: float, cap: float = math.inf) -> None:
        if n <= 0 or median <= 0:
            return
        acc = self._acc
        for i, bound in enumerate(self.bounds):
            acc[i] += n if bound >= cap else n * lognormal_cdf(bound, median, sigma)
        acc[-1] += n
        self.sum += n * min(lognormal_mean(median, sigma), cap)

    def cumulative(self) -> list[float]:
        return [float(math.floor(c)) for c in self._acc]


def _histograms() -> dict[str, LogNormalHistogram]:
    return {}


@dataclass
class Gpu:
    node: str
    index: int
    uuid: str
    pci_bus_id: str
    replica: Replica | None = None
    xid: int = 0
    fell_off_bus: bool = False
    temp_override_c: float | None = None  # a cooling fault holds the GPU at this temperature
    clock_factor: float = 1.0
    pcie_replays: float = 0.0
    correctable_remaps: float = 0.0
    uncorrectable_remaps: float = 0.0
    ecc_sbe: float = 0.0
    ecc_dbe: float = 0.0
    ecc_sbe_per_s: float = 0.0
    # An application Xid belongs to the process that hit it: it goes when the replica
    # leaves the GPU. A hardware Xid stays until the GPU is reset.
    xid_held_by_process: bool = False
    reserved_for: str | None = None  # a pod starting on it (not serving yet)

    @property
    def allocatable(self) -> bool:
        """Free, and healthy as the device plugin sees it (no hardware Xid, on the bus)."""
        healthy = not self.fell_off_bus and (self.xid == 0 or self.xid_held_by_process)
        return healthy and self.replica is None and self.reserved_for is None


@dataclass
class Node:
    name: str
    gpus: list[Gpu]
    legacy: bool  # dcgm-exporter ≤ 4.5 spells the host label `Hostname`
    last_advance: float = 0.0
    schedulable: bool = True  # False once cordoned

    @property
    def instance(self) -> str:
        return f"{self.name}:{DCGM_PORT}"


@dataclass
class Replica:
    pod: str
    deployment: str
    namespace: str
    model: str
    legacy: bool  # vLLM < 0.11: old metric names, no `engine` label
    rng: random.Random
    gpus: list[Gpu] = field(default_factory=list)
    profile: EngineProfile = field(default_factory=EngineProfile)
    image: str = f"{VLLM_IMAGE}:{CURRENT_VERSION}"
    # its part of its Deployment's demand, in replicas' worth at the profile's arrival
    # rate: set by the Deployment's balancer at each advance when it has one
    load_share: float = 1.0
    balancer: Balancer | None = field(default=None, repr=False, compare=False)
    crash_period_s: float | None = None  # crash loop: up for period - down, then down
    crash_down_s: float = 12.0
    crash_epoch: float = 0.0
    permanently_down: bool = False
    # state
    started_at: float = 0.0
    last_advance: float = 0.0
    load_phase: float = 0.0
    load_bias: float = 1.0
    state: EngineState | None = None
    counters: dict[str, float] = field(default_factory=dict)
    histograms: dict[str, LogNormalHistogram] = field(default_factory=_histograms)

    @property
    def instance(self) -> str:
        return f"{self.pod}:{REPLICA_PORT}"

    @property
    def node(self) -> str:
        return self.gpus[0].node

    def restart(self, at: float) -> None:
        """A process restart: counters and histograms start again from zero."""
        self.started_at = at
        self.last_advance = at
        self.counters = {}
        self.histograms = {}
        self.state = None

    def available(self, now: float) -> bool:
        """False while the process is down (the scrape fails, `up` becomes 0)."""
        if self.permanently_down:
            return False
        if self.crash_period_s is None:
            return True
        phase = (now - self.crash_epoch) % self.crash_period_s
        return phase < self.crash_period_s - self.crash_down_s

    def _crash_cycle(self, now: float) -> int:
        assert self.crash_period_s is not None
        return math.floor((now - self.crash_epoch) / self.crash_period_s)

    def _load(self, now: float) -> float:
        """Slow diurnal-like wave, a per-replica bias and a little jitter."""
        wave = 1.0 + 0.08 * math.sin(2 * math.pi * now / 600.0 + self.load_phase)
        return self.load_bias * wave * (1.0 + self.rng.uniform(-0.03, 0.03))

    def advance(self, now: float) -> None:
        if self.crash_period_s is not None:
            cycle_start = self.crash_epoch + self._crash_cycle(now) * self.crash_period_s
            if self.started_at < cycle_start:
                self.restart(cycle_start)
        dt = now - self.last_advance
        if dt <= 0 and self.state is not None:
            return
        dt = max(dt, 1e-3)
        self.last_advance = now
        profile = self.profile
        if self.crash_period_s is not None:
            # OOM crash loop: memory climbs through each life of the process
            life = (now - self.started_at) / max(self.crash_period_s - self.crash_down_s, 1.0)
            profile.kv_floor = min(0.99, 0.55 + 0.45 * life)
        waiting = self.state.waiting if self.state else 0.0
        if self.balancer is not None:
            self.load_share = self.balancer.share(self, now)
        state = step(profile, waiting, self._load(now), dt, share=self.load_share)
        if profile.scheduler_seq_cap is None:
            # requests finish one by one: the batch breathes around its mean
            state.running = min(profile.max_num_seqs, state.running * self.rng.uniform(0.95, 1.05))
        self.state = state
        self._integrate(state, dt)

    def _integrate(self, s: EngineState, dt: float) -> None:
        p = self.profile
        c = self.counters
        finished = s.served_rps * dt
        prompt_mean = lognormal_mean(p.prompt_median, p.prompt_sigma)
        generation_mean = lognormal_mean(p.generation_median, p.generation_sigma)
        prompt_tokens = finished * prompt_mean
        queried = prompt_tokens / (16 if self.legacy else 1)  # old counters counted blocks

        def add(key: str, value: float) -> None:
            c[key] = c.get(key, 0.0) + value

        add("prompt_tokens", prompt_tokens)
        add("generation_tokens", finished * generation_mean)
        add("prefix_queries", queried)
        add("prefix_hits", queried * p.prefix_hit_rate)
        add("preemptions", s.preemptions_per_s * dt)
        errors = finished * p.error_fraction
        aborts = finished * p.abort_fraction + s.aborted_rps * dt
        ok = max(0.0, finished - errors - finished * p.abort_fraction)
        add("finished:stop", ok * 0.86)
        add("finished:length", ok * 0.14)
        add("finished:abort", aborts)
        if self.legacy:
            add("finished:abort", errors)  # old engines had no `error` reason
        else:
            add("finished:error", errors)
        add("http:2xx", ok + finished * p.abort_fraction)
        add("http:4xx", finished * 0.001)
        add("http:5xx", errors)

        h = self.histograms
        if not h:
            h.update(
                ttft=LogNormalHistogram(catalog.TTFT_BUCKETS),
                tpot=LogNormalHistogram(catalog.TPOT_BUCKETS),
                request_tpot=LogNormalHistogram(catalog.TPOT_BUCKETS),
                e2e=LogNormalHistogram(catalog.REQUEST_LATENCY_BUCKETS),
                queue=LogNormalHistogram(catalog.REQUEST_LATENCY_BUCKETS),
                inference=LogNormalHistogram(catalog.REQUEST_LATENCY_BUCKETS),
                prefill=LogNormalHistogram(catalog.REQUEST_LATENCY_BUCKETS),
                decode=LogNormalHistogram(catalog.REQUEST_LATENCY_BUCKETS),
                prompt=LogNormalHistogram(catalog.one_two_five_buckets(p.max_model_len)),
                generation=LogNormalHistogram(catalog.one_two_five_buckets(p.max_model_len)),
                iteration=LogNormalHistogram(catalog.ITERATION_TOKEN_BUCKETS),
            )
        decode_s = p.generation_median * s.tpot_s
        # a request whose first token would come after its client gave up was abandoned:
        # none that finished waited longer than the timeout
        timeout = p.client_timeout_s
        h["ttft"].observe(
            finished, s.ttft_median_s, 0.55 if s.queue_wait_s < 1 else 0.35, cap=timeout
        )
        h["tpot"].observe(finished * generation_mean, s.tpot_s, 0.25)
        h["request_tpot"].observe(finished, s.tpot_s, 0.15)
        h["e2e"].observe(finished, s.ttft_median_s + decode_s, 0.5)
        h["queue"].observe(finished, max(s.queue_wait_s, 0.002), 0.6, cap=timeout)
        h["inference"].observe(finished, s.prefill_median_s + decode_s, 0.5)
        h["prefill"].observe(finished, s.prefill_median_s, p.prompt_sigma)
        h["decode"].observe(finished, decode_s, p.generation_sigma)
        h["prompt"].observe(finished, p.prompt_median, p.prompt_sigma, cap=p.max_model_len)
        h["generation"].observe(finished, p.generation_median, p.generation_sigma)
        steps = dt / max(s.tpot_s, 1e-3)
        h["iteration"].observe(steps, max(1.0, s.running + 256), 0.9)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "model"


def _token(
    seed: int, *parts: object, alphabet: str = "bcdfghjklmnpqrstvwxz2456789", n: int = 5
) -> str:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return "".join(alphabet[b % len(alphabet)] for b in digest[:n])


Condition = Callable[[Replica], None]


def unchanged(replica: Replica) -> None:
    return None


# How the balancer weighs queues: replicas within BALANCE_SLACK waiting requests of the
# shortest queue count as equally loaded; each BALANCE_SCALE further requests cut a
# replica's part of new arrivals by a factor e. It weighs them again at most every
# BALANCE_INTERVAL_S seconds (a gateway's view of its endpoints is as fresh as that); a
# longer time since the last weighing (a coarse step) weighs proportionally more gently,
# up to BALANCE_MAX_GAP_S, so that one long step cannot overshoot the queues' meeting.
BALANCE_SLACK = 4.0
BALANCE_SCALE = 16.0
BALANCE_INTERVAL_S = 1.0
BALANCE_MAX_GAP_S = 60.0


@dataclass
class Balancer:
    """The load balancer in front of one Deployment, queue-aware as inference gateways are
    (least outstanding requests).

    ``demand`` is the Deployment's demand in replicas' worth at the profile's arrival rate;
    it is conserved whatever the number of replicas serving. A replica's part of it falls
    exponentially with how much longer its queue is than the shortest one — a fluid
    version of "send each request to the replica with the fewest waiting": with queues
    alike every replica gets ``demand / len(replicas)``; after a scale-out the new, empty
    replicas take most new arrivals while the old ones drain their backlog at about full
    capacity, until the queues meet.

    The parts are weighed from one snapshot of the queues (each as of its replica's last
    advance, at most a scrape interval old), so they add up to ``demand`` exactly.
    """

    demand: float
    replicas: list[Replica] = field(default_factory=list, repr=False)
    shares: dict[str, float] = field(default_factory=dict, repr=False)
    weighed_at: float = -math.inf
    changed: bool = True  # the replicas serving changed since the last weighing

    def serve(self, replicas: list[Replica]) -> None:
        """The replicas serving now (a scale, a replacement): weigh again at once."""
        self.replicas = replicas
        self.shares = {r.pod: self.demand / len(replicas) for r in replicas}  # none: {}
        self.changed = True

    def share(self, replica: Replica, now: float) -> float:
        if self.changed or now - self.weighed_at >= BALANCE_INTERVAL_S:
            self._weigh(now)
        return self.shares.get(replica.pod, 0.0)

    def _weigh(self, now: float) -> None:
        queues = {r.pod: r.state.waiting if r.state else 0.0 for r in self.replicas}
        if not queues:
            return
        shortest = min(queues.values())
        gap = min(max(now - self.weighed_at, BALANCE_INTERVAL_S), BALANCE_MAX_GAP_S)
        scale = BALANCE_SCALE * gap / BALANCE_INTERVAL_S
        weights = {
            pod: math.exp(-max(0.0, q - shortest - BALANCE_SLACK) / scale)
            for pod, q in queues.items()
        }
        total = sum(weights.values())
        self.shares = {pod: self.demand * w / total for pod, w in weights.items()}
        self.weighed_at, self.changed = now, False


@dataclass
class Workload:
    """What the cluster says about a Deployment (kept by the fleet twin)."""

    desired: int
    ready: int
    revision: str
    image: str


@dataclass
class Fleet:
    replicas: list[Replica]
    nodes: list[Node]
    namespace: str
    seed: int
    gpus_per_replica: int = 1
    client_timeout_s: float = CLIENT_TIMEOUT_S  # how long the fleet's clients wait

    def profile(self) -> EngineProfile:
        """A healthy replica's conditions in this fleet."""
        return EngineProfile(client_timeout_s=self.client_timeout_s)

    def replica(self, pod: str) -> Replica | None:
        return self._by_pod.get(pod)

    def node(self, name: str) -> Node | None:
        return self._by_node.get(name)

    def __post_init__(self) -> None:
        self._by_pod = {r.pod: r for r in self.replicas}
        self._by_node = {n.name: n for n in self.nodes}
        self.models = {r.deployment: r.model for r in self.replicas}
        # the demand of each Deployment, in replicas' worth at the profile's arrival rate
        self.nominal = {d: sum(r.deployment == d for r in self.replicas) for d in self.models}
        self.balancers = {d: Balancer(float(n)) for d, n in self.nominal.items()}
        for deployment in self.models:
            self.rebalance(deployment)
        # the running scenario's conditions for replicas that join later (see scenarios)
        self.conditions: Condition = unchanged
        self.workloads: dict[str, Workload] = {}

    @property
    def deployments(self) -> list[str]:
        return sorted(self.models)

    def free_slot(self) -> list[Gpu] | None:
        """GPUs for one more replica: the first schedulable node with enough allocatable
        GPUs (a replica never spans nodes); None when the fleet is full."""
        for node in self.nodes:
            if node.schedulable:
                free = [g for g in node.gpus if g.allocatable]
                if len(free) >= self.gpus_per_replica:
                    return free[: self.gpus_per_replica]
        return None

    def join(
        self, pod: str, deployment: str, gpus: list[Gpu], now: float, image: str | None = None
    ) -> Replica:
        """A new replica of ``deployment`` starts serving on ``gpus`` (a fresh process)."""
        if pod in self._by_pod:
            raise ValueError(f"replica {pod} already serves")
        rng = random.Random(f"{self.seed}/{pod}")
        replica = Replica(
            pod=pod,
            deployment=deployment,
            namespace=self.namespace,
            model=self.models[deployment],
            legacy=False,
            rng=rng,
            load_phase=rng.uniform(0, 2 * math.pi),
            load_bias=rng.uniform(0.92, 1.08),
            gpus=list(gpus),
            profile=self.profile(),
        )
        if image is not None:
            replica.image = image
        for gpu in gpus:
            gpu.replica, gpu.reserved_for = replica, None
        replica.restart(now)
        self.conditions(replica)
        self.replicas.append(replica)
        self._by_pod[pod] = replica
        self.rebalance(deployment)
        replica.advance(now)
        return replica

    def leave(self, pod: str) -> Replica | None:
        """The replica stops (its pod is gone); its GPUs are free again."""
        replica = self._by_pod.pop(pod, None)
        if replica is None:
            return None
        self.replicas.remove(replica)
        for gpu in replica.gpus:
            gpu.replica = None
            if gpu.xid_held_by_process:
                gpu.xid, gpu.xid_held_by_process = 0, False
        self.rebalance(replica.deployment)
        return replica

    def rebalance(self, deployment: str) -> None:
        """Put the replicas serving the Deployment now behind its balancer, each with an
        even part of the demand until the balancer weighs the queues again."""
        serving = [r for r in self.replicas if r.deployment == deployment]
        balancer = self.balancers.setdefault(
            deployment, Balancer(float(self.nominal.get(deployment, len(serving))))
        )
        balancer.serve(serving)
        for replica in serving:
            replica.balancer = balancer
            replica.load_share = balancer.shares[replica.pod]


def _node(seed: int, n: int, gpus_per_node: int, legacy: bool) -> Node:
    name = f"gpu-node-{n + 1:03d}"
    gpus = [
        Gpu(
            node=name,
            index=g,
            uuid="GPU-" + hashlib.sha256(f"{seed}/{name}/{g}".encode()).hexdigest()[:32],
            pci_bus_id=f"00000000:{0x18 + 0x10 * g:02X}:00.0",
        )
        for g in range(gpus_per_node)
    ]
    return Node(name=name, gpus=gpus, legacy=legacy)


def build_fleet(
    *,
    replicas: int,
    gpus_per_replica: int,
    gpus_per_node: int = 8,
    models: tuple[str, ...] = ("llama-3.1-70b-instruct",),
    namespace: str = "inference",
    legacy_fraction: float = 0.0,
    seed: int = 0,
    spare_nodes: int = 0,
    client_timeout_s: float = CLIENT_TIMEOUT_S,
    now: float,
) -> Fleet:
    """Place ``replicas`` engines of ``gpus_per_replica`` GPUs on nodes of ``gpus_per_node``.

    Replicas of one model form one Deployment; a replica never spans nodes. ``spare_nodes``
    empty nodes follow, room for replicas added or moved at run time. Every name is
    derived from the seed, so the same arguments give the same fleet. ``client_timeout_s``:
    how long clients wait for a request to start before they abandon it.
    """
    if replicas < 1 or gpus_per_replica < 1:
        raise ValueError("replicas and gpus_per_replica must be at least 1")
    if gpus_per_replica > gpus_per_node:
        raise ValueError(
            f"gpus_per_replica ({gpus_per_replica}) cannot exceed gpus_per_node ({gpus_per_node})"
        )
    if not 0.0 <= legacy_fraction <= 1.0:
        raise ValueError("legacy_fraction must be between 0 and 1")
    if spare_nodes < 0:
        raise ValueError("spare_nodes must not be negative")
    rng = random.Random(seed)
    per_node = gpus_per_node // gpus_per_replica
    node_count = math.ceil(replicas / per_node)
    nodes = [
        _node(seed, n, gpus_per_node, rng.random() < legacy_fraction) for n in range(node_count)
    ]

    fleet_replicas: list[Replica] = []
    taken: set[str] = set()
    for i in range(replicas):
        model = models[i * len(models) // replicas]
        deployment = f"vllm-{_slug(model)}"
        template_hash = _token(seed, deployment, alphabet="0123456789bcdf", n=10)
        pod = f"{deployment}-{template_hash}-{_token(seed, i)}"
        salt = 0
        while pod in taken:  # 5 characters collide at fleet scale: draw again
            salt += 1
            pod = f"{deployment}-{template_hash}-{_token(seed, i, salt)}"
        taken.add(pod)
        replica = Replica(
            pod=pod,
            deployment=deployment,
            namespace=namespace,
            model=model,
            legacy=rng.random() < legacy_fraction,
            rng=random.Random(f"{seed}/{pod}"),
            load_phase=rng.uniform(0, 2 * math.pi),
            load_bias=rng.uniform(0.92, 1.08),
            profile=EngineProfile(client_timeout_s=client_timeout_s),
        )
        node = nodes[i // per_node]
        first = (i % per_node) * gpus_per_replica
        replica.gpus = node.gpus[first : first + gpus_per_replica]
        for gpu in replica.gpus:
            gpu.replica = replica
        warm_start = now - WARM_UP_S * rng.uniform(0.5, 1.5)
        replica.restart(warm_start)
        replica.advance(now)
        fleet_replicas.append(replica)
    spare_rng = random.Random(f"{seed}/spare")  # the same fleet, whatever the spare count
    nodes += [
        _node(seed, n, gpus_per_node, spare_rng.random() < legacy_fraction)
        for n in range(node_count, node_count + spare_nodes)
    ]
    for node in nodes:
        node.last_advance = now
    return Fleet(
        replicas=fleet_replicas,
        nodes=nodes,
        namespace=namespace,
        client_timeout_s=client_timeout_s,
        seed=seed,
        gpus_per_replica=gpus_per_replica,
    )
