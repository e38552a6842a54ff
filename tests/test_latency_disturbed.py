"""A compiled INT8 model timed while other processes load its core: the reported latency (the median) stays
within TOLERANCE of an undisturbed measurement of the same model when a minority of the runs (10%, twice
the share the old 5% trimmed mean cut) is disturbed, and the stability gate flags the measurement when most
of them (60%) are.

The test pins itself to one CPU and starts busy-loop processes on that same CPU, stopped; a wrapper around
the compiled model resumes them for the runs a pattern names and stops them for the others, so which runs
are disturbed does not depend on how fast the machine is or on how many cores it has (2 on CI). The busy
loops end by themselves after a minute and are killed when the test ends.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch import nn

from simqnas.latency import GatedLatency, StabilityGate, measure_latency_gated
from simqnas.quantize import compile_for_inference, quantize_static

#: how far the reported latency of a measurement with a minority of disturbed runs may move
TOLERANCE = 0.15
#: busy loops sharing the measured CPU while a run is disturbed: the model gets about a third of the core
BUSY_LOOPS = 2
#: a bound on each busy loop's life, in seconds, should the test die before it kills them
BUSY_SECONDS = 60
WIDTH, TOKENS = 1024, 192  # about 3 ms a pass at 1 thread: longer than a scheduler time slice
RUNS = 200
#: a gate above the relative IQR of 0.2-0.4 that a 2-core VM shared with other work shows undisturbed
GATE = StabilityGate(max_relative_spread=0.5, max_attempts=3)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def compiled() -> tuple[Callable[..., Any], tuple[torch.Tensor, ...]]:
    """A three-layer Linear stack, every layer INT8 (INC static quantization), Inductor-compiled."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(WIDTH, 2 * WIDTH),
        nn.ReLU(),
        nn.Linear(2 * WIDTH, WIDTH),
        nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
    ).eval()
    calibration = [(torch.randn(4, TOKENS, WIDTH),) for _ in range(2)]
    qmodel = quantize_static(
        model, (torch.randn(2, TOKENS, WIDTH),), calibration, dict.fromkeys(("0", "2", "4"), "int8")
    )
    inputs = (torch.randn(1, TOKENS, WIDTH),)
    return compile_for_inference(qmodel, inputs), inputs


@contextmanager
def one_cpu() -> Iterator[None]:
    """This thread (which runs the 1-thread model) pinned to one CPU; processes it starts inherit it."""
    allowed = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {max(allowed)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, allowed)


class Disturbance:
    """Busy-loop processes, stopped, that `wrap` resumes for the model calls `disturbed(call)` names."""

    def __init__(self) -> None:
        loop = (
            f"import time\nend = time.monotonic() + {BUSY_SECONDS}\nwhile time.monotonic() < end:\n    pass"
        )
        self.loops = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(BUSY_LOOPS)]
        self.running = True
        self.pause()

    def _signal(self, number: signal.Signals) -> None:
        for loop in self.loops:
            os.kill(loop.pid, number)

    def pause(self) -> None:
        if self.running:
            self._signal(signal.SIGSTOP)
            self.running = False

    def wrap(self, model: Callable[..., Any], disturbed: Callable[[int], bool]) -> Callable[..., Any]:
        calls = [0]

        def timed(*inputs: torch.Tensor) -> Any:
            load = disturbed(calls[0])
            calls[0] += 1
            if load and not self.running:
                self._signal(signal.SIGCONT)
                self.running = True
            elif not load:
                self.pause()
            return model(*inputs)

        return timed

    def close(self) -> None:
        for loop in self.loops:
            loop.kill()
            loop.wait()


@contextmanager
def disturbance() -> Iterator[Disturbance]:
    busy = Disturbance()
    try:
        yield busy
    finally:
        busy.close()


def measure_beside_undisturbed(
    compiled: tuple[Callable[..., Any], tuple[torch.Tensor, ...]],
    disturbed: Callable[[int], bool],
    gate: StabilityGate,
) -> GatedLatency:
    """The model timed with the runs `disturbed` names loaded, against the same model undisturbed as the
    reference, in alternating blocks: whatever else the machine does hits both measurements alike."""
    model, inputs = compiled
    with one_cpu(), disturbance() as busy:
        return measure_latency_gated(
            busy.wrap(model, disturbed),
            inputs,
            reference=busy.wrap(model, lambda call: False),
            warmup=10,
            runs=RUNS,
            threads=1,
            gate=gate,
        )


def test_a_minority_of_disturbed_runs_leaves_the_latency_within_tolerance(compiled) -> None:
    # 1 run in every 10 shares the core with the busy loops: twice the share the 5% trim cuts
    result = measure_beside_undisturbed(compiled, lambda call: call % 10 < 1, GATE)
    stats, undisturbed = result.stats, result.reference
    if not GATE.passes(undisturbed):
        pytest.skip(
            f"the machine is busy beyond this test's disturbance: the undisturbed runs' relative IQR is "
            f"{undisturbed.relative_iqr:.2f} (load average {result.load_start[0]:.1f})"
        )
    # the disturbance is real: the slowest runs take far longer than an undisturbed pass ...
    assert stats.p95 > 1.5 * undisturbed.reported, result
    # ... and the trimmed mean reported before follows it further than the median does
    assert stats.mean / undisturbed.mean - 1 > abs(result.reference_ratio - 1), result
    # the median stays within the tolerance (whether or not the gate judged the spread stable)
    assert abs(result.reference_ratio - 1) <= TOLERANCE, result


def test_a_majority_of_disturbed_runs_is_flagged_unstable(compiled) -> None:
    # 6 runs in every 10, in every measurement the gate asks for. Whether a resumed busy loop preempts a
    # ~1 ms call is up to the scheduler, so now and then too few calls are slowed to spread the runs; the
    # invariant is that no measurement is a silent outlier: flagged after every attempt, or within the
    # tolerance of the undisturbed model timed beside it (tests/test_latency.py flags a known bimodal
    # workload deterministically)
    result = measure_beside_undisturbed(compiled, lambda call: call % 10 < 6, GATE)
    if result.stable:
        assert abs(result.reference_ratio - 1) <= TOLERANCE, result
    else:
        assert result.attempts == GATE.max_attempts, result
        assert min(result.spreads) > GATE.max_relative_spread
