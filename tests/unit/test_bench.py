"""The benchmark's own arithmetic: the process sampler on real processes, the table from measurements."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.run import WARM_FLOOR, Measurement, render, summarise
from bench.sampler import TAG_VARIABLE, TreeSampler, role_of

HOLD = "import sys, time; block = bytearray({mib} * 1024 * 1024); block[::4096] = b'x' * len(block[::4096]); "


def test_the_sampler_sums_every_tagged_process_and_nothing_else() -> None:
    grandchild = HOLD.format(mib=64) + "time.sleep(1.5)"
    child = HOLD.format(mib=32) + f"import subprocess; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    sampler = TreeSampler("t1", interval_s=0.05).start()
    untagged = subprocess.Popen([sys.executable, "-c", HOLD.format(mib=128) + "time.sleep(2)"])
    subprocess.run([sys.executable, "-c", child], env={**os.environ, TAG_VARIABLE: "t1"}, check=True)
    profile = sampler.stop()
    untagged.wait()
    assert profile.processes_by_role == {"other": 2}
    assert 64 + 32 < profile.peak_sum_mib < 64 + 32 + 128  # both tagged processes, not the untagged one
    assert profile.at_peak_by_role_mib == {"other": profile.peak_sum_mib}  # what made up the peak
    assert 64 + 32 < profile.peak_pss_sum_mib <= profile.peak_sum_mib  # PSS: shared pages counted once
    assert profile.samples > 5


def test_processes_are_named_by_their_part_in_the_run() -> None:
    assert role_of(
        "python -c from flows.runtime.remote import serve x flows.rawdata.worker:RawDataWorker"
    ) == ("raw_data_worker")
    assert role_of("/venv/bin/python /venv/bin/prefect server start --host 127.0.0.1") == "prefect_server"
    assert role_of("/venv/bin/python -m uvicorn --factory prefect.server.api.server:create_app") == (
        "prefect_server"
    )
    assert role_of("/venv/bin/python /venv/bin/persons-pipeline run --total 30000") == "orchestrator"
    assert role_of("/venv/bin/python -m bench.warm_floor --total 30000 --seeds 42,43") == "orchestrator"


def measurement(scenario: str, round_number: int, wall: float, rss: float) -> Measurement:
    detail = (
        {"run": {"stages": {"extract": 1.0}}, "total_persons": 10} if scenario.startswith("pipeline") else {}
    )
    roles = {"x": rss}
    return Measurement(scenario, 10, round_number, wall, wall, rss, roles, roles, rss * 0.9, 1.0, 1.0, detail)


def test_ratios_are_per_round_medians_and_the_first_run_is_apart() -> None:
    results = [
        measurement("pipeline external", 0, 9.0, 900),
        *(measurement("download", r, w, 50) for r, w in ((1, 1.0), (2, 2.0), (3, 1.0))),
        *(measurement("naive", r, w, 300) for r, w in ((1, 4.0), (2, 8.0), (3, 4.0))),
        *(measurement("pipeline external", r, w, 600) for r, w in ((1, 2.0), (2, 4.0), (3, 3.0))),
    ]
    rows = {row["scenario"]: row for row in summarise(results, [10], ["external"])}
    pipeline = rows["pipeline external"]
    assert pipeline["runs"] == 3 and pipeline["first_wall_s"] == 9.0 and pipeline["wall_s"] == 3.0
    assert pipeline["x_naive"] == 0.5  # 2/4, 4/8, 3/4 -> median 0.5
    assert pipeline["x_download"] == 2.0  # 2/1, 4/2, 3/1 -> median 2
    assert pipeline["peak_sum_mib"] == 600
    table = render(list(rows.values()))
    assert "pipeline external" in table and "600" in table


def test_the_warm_runner_floor_is_compared_with_naive_but_not_held_to_the_targets() -> None:
    results = [
        *(measurement("naive", r, 2.0, 300) for r in (1, 2)),
        *(measurement(WARM_FLOOR, r, w, 700) for r, w in ((0, 9.0), (1, 3.0), (2, 5.0))),
    ]
    rows = {row["scenario"]: row for row in summarise(results, [10], ["external"])}
    floor = rows[WARM_FLOOR]
    assert floor["first_wall_s"] == 9.0 and floor["wall_s"] == 4.0 and floor["x_naive"] == 2.0
    assert floor["peak_pss_sum_mib"] == 630
    assert not [line for line in render(list(rows.values())).splitlines() if line.startswith("target")]


def test_every_target_is_printed_with_its_figure_and_verdict_or_not_measured() -> None:
    """The 1M targets from the warm rounds, the first run against naive's median, the 10M merge growth from
    the merges the runs noted by warehouse size; a figure the bench did not measure says so."""
    from bench.run import target_lines

    def sized(m: Measurement, persons: int, merges: list[tuple[int, float]] | None = None) -> Measurement:
        m.persons = persons
        if merges is not None:
            m.detail["run"]["merges"] = merges
        return m

    million = [
        sized(measurement("pipeline external", 0, 30.0, 900), 1_000_000),
        *(sized(measurement("naive", r, 40.0, 3000), 1_000_000) for r in (1, 2)),
        *(sized(measurement("pipeline external", r, w, 700), 1_000_000) for r, w in ((1, 12.0), (2, 16.0))),
    ]
    row = next(
        r for r in summarise(million, [1_000_000], ["external"]) if r["scenario"] == "pipeline external"
    )
    lines = target_lines(row)
    assert "1M warm wall <= 0.35x naive: 0.35x met" in lines  # 12/40, 16/40 -> median 0.35
    assert "1M warm CPU <= 20 s: 14.00 s met" in lines
    assert "1M first run <= 0.6x naive: 0.75x MISSED" in lines  # 30 / 40
    assert any(
        line.startswith("1,000,000 summed RSS without a Prefect server <= 800 MiB: 700.00") for line in lines
    )
    ten = [
        sized(
            measurement("pipeline external", 0, 400.0, 1500),
            10_000_000,
            [(2_000_000, 0.4), (10_000_000, 0.5)],
        ),
        sized(
            measurement("pipeline external", 1, 140.0, 1200),
            10_000_000,
            [(19_000_000, 0.8), (20_000_000, 0.9)],
        ),
    ]
    row = next(r for r in summarise(ten, [10_000_000], ["external"]) if r["scenario"] == "pipeline external")
    lines = target_lines(row)
    assert "10M warm round over 20M <= 150 s: 140.00 s met" in lines
    assert "its report <= 10 s: not measured" in lines  # the stages hold no report
    assert "a batch's merge at 20M <= 1.3x at 2M: 2.12x MISSED (0.85 s against 0.40 s)" in lines
