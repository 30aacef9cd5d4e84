"""The comparison's run order (bench/plan.py) and issue 18's ratios (bench/ratios.py)."""

from __future__ import annotations

from bench.plan import Step, cluster_steps
from bench.ratios import render_ratios
from bench.report import Results, render_table

ALL = {"systems": ["yadtq", "floor"], "workers": [1, 2], "brokers": ["embedded", "kafka"],
       "kafka_fetch_waits": [None]}


def test_yadtq_and_floor_interleave_per_worker_count_and_broker() -> None:
    assert cluster_steps(0, **ALL) == [
        Step("yadtq", 1, "embedded"), Step("floor", 1, "embedded"),
        Step("yadtq", 1, "kafka"), Step("floor", 1, "kafka"),
        Step("yadtq", 2, "embedded"), Step("floor", 2, "embedded"),
        Step("yadtq", 2, "kafka"), Step("floor", 2, "kafka"),
    ]


def test_every_other_run_goes_in_reverse() -> None:
    assert cluster_steps(1, **ALL) == cluster_steps(0, **ALL)[::-1]
    assert cluster_steps(2, **ALL) == cluster_steps(0, **ALL)


def test_fetch_waits_multiply_yadtq_kafka_clusters_only() -> None:
    steps = cluster_steps(0, systems=["yadtq", "floor"], workers=[2], brokers=["embedded", "kafka"],
                          kafka_fetch_waits=[None, 10])
    assert steps == [Step("yadtq", 2, "embedded"), Step("floor", 2, "embedded"),
                     Step("yadtq", 2, "kafka"), Step("yadtq", 2, "kafka", 10), Step("floor", 2, "kafka")]
    assert steps[3].describe(0) == "yadtq 2w on kafka (fetch 10 ms) run 1"
    assert steps[1].describe(1) == "Faust floor 2w on embedded run 2"


def test_ratios_pair_rows_of_the_same_broker_and_worker_count() -> None:
    results = Results()
    for system, values in {"yadtq 2w Kafka": [800, 1000], "Faust floor 2w": [1000, 1000],
                           "yadtq 2w HTTP bulk": [700, 900], "yadtq AK 2w Kafka": [500],
                           "Faust floor AK 2w": [2000], "Faust floor 1w": [3000]}.items():
        for value in values:
            results.add("throughput (tasks/s)", system, value)
    table = render_ratios(results)
    assert table is not None
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in table.splitlines()[2:]}
    assert rows == {
        "yadtq 2w Kafka ÷ Faust floor 2w": ["0.90", "0.80–1.00", "yes"],
        "yadtq 2w HTTP bulk ÷ yadtq 2w Kafka": ["0.89", "0.88–0.90", "yes"],
        "yadtq AK 2w Kafka ÷ Faust floor AK 2w": ["0.25", "0.25–0.25", "no"],
    }


def test_no_ratio_without_a_pair() -> None:
    results = Results()
    results.add("throughput (tasks/s)", "yadtq 2w Kafka", 1000)
    results.add("throughput (tasks/s)", "Faust floor 1w", 1000)
    assert render_ratios(results) is None


def test_the_table_divides_yadtq_and_floor_rows_by_each_peer() -> None:
    results = Results()
    for system, value in {"yadtq AK 1w Kafka": 3.0, "Faust floor AK 1w": 3.3, "Celery": 2.0, "Celery AK": 5.0,
                          "taskiq": 4.0}.items():
        results.add("latency p50 (ms)", system, value)
    lines = [[c.strip() for c in line.split("|")[1:-1]] for line in render_table(results).splitlines()]
    head = lines[0]
    rows = {cells[1]: [cells[head.index(f"÷ {peer}")] for peer in ("Celery", "Celery AK", "taskiq")]
            for cells in lines[2:]}
    assert rows == {"yadtq AK 1w Kafka": ["1.50", "0.60", "0.75"], "Faust floor AK 1w": ["1.65", "0.66", "0.82"],
                    "Celery": ["", "", ""], "Celery AK": ["", "", ""], "taskiq": ["", "", ""]}
