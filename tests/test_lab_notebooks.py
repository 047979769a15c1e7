"""The latency lab's notebooks (10, 12 and their optional 10b, 12b) as committed: what
their prose promises holds.

nbval re-runs them in quick mode; these tests read the saved outputs of the
learner-sized run a reader sees on GitHub or opens in JupyterLab, and the
reference results shipped beside them.
"""

import json
import re
from pathlib import Path

import pytest

from sockserver_lib import bench

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
LAB_NOTEBOOKS = ("10_latency_lab.ipynb", "10b_slow_clients_and_break_even.ipynb",
                 "12_pools.ipynb", "12b_every_server_in_the_lab.ipynb")
#: The notebooks that put the learner's run beside the reference run (the
#: comparison moved from 10 and 12 to their optional parts).
REFERENCE_NOTEBOOKS = ("10b_slow_clients_and_break_even.ipynb",
                       "12b_every_server_in_the_lab.ipynb")
#: Every lab notebook's prose: "with its defaults [it] measures for about a minute"
#: (or less).
ABOUT_A_MINUTE_S = 90


def saved_text(name: str) -> str:
    """Everything the saved notebook printed or displayed as text, in order."""
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    parts = []
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


@pytest.mark.parametrize("name", LAB_NOTEBOOKS)
def test_the_saved_run_is_the_learner_sized_one_and_measured_for_about_a_minute(name):
    text = saved_text(name)
    assert "quick" not in re.findall(r"run size: (\w+)", text)  # not CI's quick mode
    seconds = [int(s) for s in re.findall(r"done: \d+ measurements in (\d+) s", text)]
    assert seconds, "the saved outputs show no finished progress line"
    assert sum(seconds) <= ABOUT_A_MINUTE_S, seconds


@pytest.mark.parametrize("name", REFERENCE_NOTEBOOKS)
def test_the_saved_outputs_show_the_reference_machine_beside_the_learners(name):
    text = saved_text(name)
    machine = bench.load_results(NOTEBOOKS / "reference" / "lab-full.json").machine
    assert f"reference: Python {machine['python']}, {machine['usable_cpus']} usable CPU(s)" \
        in text
    assert machine["date"] in text


@pytest.mark.parametrize("name", LAB_NOTEBOOKS)
def test_no_saved_output_is_an_error_or_an_old_workload_name(name):
    notebook = json.loads((NOTEBOOKS / name).read_text(encoding="utf-8"))
    outputs = [o for cell in notebook["cells"] for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert "slow-client" not in (NOTEBOOKS / name).read_text(encoding="utf-8")


def test_the_reference_is_a_full_run_of_every_kind_with_a_sweep():
    reference = bench.load_results(NOTEBOOKS / "reference" / "lab-full.json")
    full = bench.default_settings(size="full")
    assert tuple(reference.settings["concurrency"]) == full.concurrency
    assert reference.settings["repeats"] == full.repeats
    assert {row["server"] for row in reference.summary} >= {"sync", "threading", "forking"}
    assert {row["workload"] for row in reference.summary} == set(bench.WORKLOADS)
    sweep = bench.load_results(NOTEBOOKS / "reference" / "lab-sweep.json")
    levels = {row["work_ms"] for row in sweep.summary}
    assert len(levels) >= 5 and all("rps_low" in row for row in sweep.summary)


def prediction_feedback(name: str) -> list[tuple[str, str]]:
    """(the measured answer, the verdict the explanation quotes) of every checked prediction."""
    return re.findall(r"^Measured: (.*)\nWhy: .*This run: (.*)$", saved_text(name), re.M)


@pytest.mark.parametrize("name", LAB_NOTEBOOKS)
def test_every_measured_answer_agrees_with_the_verdict_it_quotes(name):
    feedback = prediction_feedback(name)
    assert feedback, f"{name}: no checked prediction in the saved outputs"
    for measured, verdict in feedback:
        within_noise = verdict.startswith("No clear difference")
        says_so = "no clear difference" in measured or "not clearly" in measured
        assert within_noise == says_so, (name, measured, verdict)
