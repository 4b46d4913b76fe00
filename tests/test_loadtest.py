"""`mini-forge loadtest`: stages, ramping, bad input, and thresholds against a dead instance."""

from __future__ import annotations

import pytest

from mini_forge.cli import main
from mini_forge.loadtest import (
    EXIT_THRESHOLDS_CROSSED,
    LoadTestError,
    Results,
    Stage,
    parse_stages,
    scale_stages,
    stage_number,
    target_vus,
    thresholds,
)
from tests.support import free_port


def test_stages_parse_in_every_unit() -> None:
    assert parse_stages("30s:50, 1m:1000,500ms:2,1.5h:0") == [
        Stage(30.0, 50),
        Stage(60.0, 1000),
        Stage(0.5, 2),
        Stage(5400.0, 0),
    ]


@pytest.mark.parametrize("text", ["", "30s", "30:50", "30s:-1", "30s:many", "x30s:5", "30d:5"])
def test_malformed_stages_are_refused(text: str) -> None:
    with pytest.raises(LoadTestError, match="is not DURATION:VUS"):
        parse_stages(text)


def test_scale_shrinks_durations_and_targets_but_keeps_every_stage_busy() -> None:
    assert scale_stages(parse_stages("30s:50,30s:1000,30s:2000,30s:0"), 0.01) == [
        Stage(0.3, 1),
        Stage(0.3, 10),
        Stage(0.3, 20),
        Stage(0.3, 0),
    ]


def test_vus_ramp_linearly_from_the_previous_target() -> None:
    stages = parse_stages("10s:100,10s:100,10s:0")
    assert [target_vus(stages, second) for second in (0, 5, 10, 15, 20, 25, 30, 99)] == [
        0, 50, 100, 100, 100, 50, 0, 0,
    ]  # fmt: skip
    assert [stage_number(stages, second) for second in (0, 9.9, 10, 29.9, 30)] == [1, 1, 2, 3, 3]


def met(results: Results) -> list[bool]:
    return [met for _description, met in thresholds(results)]


def test_thresholds_follow_the_k6_script() -> None:
    fast = Results(requests=1000)
    fast.latencies_ms.extend([10.0] * 1000)
    fast.failures["HTTP 503"] = 9
    assert met(fast) == [True, True]
    fast.failures["HTTP 503"] = 10  # exactly 1% is not below 1%
    assert met(fast) == [False, True]

    slow = Results(requests=1000)
    slow.latencies_ms.extend([10.0] * 940 + [500.0] * 60)
    assert met(slow) == [True, False]

    assert met(Results()) == [False, False]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--stages", "soon:10"], "--stages: 'soon:10' is not DURATION:VUS"),
        (["--scale", "0"], "--scale=0.0: must be above 0"),
        (["--url", "127.0.0.1:8080"], "--url 127.0.0.1:8080: must start with http://"),
        (["--timeout", "-1"], "--timeout=-1.0: must be above 0 seconds"),
        (["--keys-file", "/nonexistent/dir/keys.log"], "its directory does not exist"),
    ],
)
def test_bad_input_is_one_clear_line(
    arguments: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", *arguments]) == 2
    error_lines = capsys.readouterr().err.strip().splitlines()
    assert len(error_lines) == 1
    assert error_lines[0].startswith("mini-forge loadtest: ")
    assert message in error_lines[0]


def test_an_instance_that_refuses_connections_crosses_the_failure_threshold(
    capsys: pytest.CaptureFixture[str],
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"

    status = main(["loadtest", "--url", dead_url, "--stages", "1s:3"])

    output = capsys.readouterr().out
    assert status == EXIT_THRESHOLDS_CROSSED
    assert "ClientConnectorError" in output
    assert "✗ http_req_failed rate<1% (measured 100.00%)" in output
    assert "thresholds crossed" in output
