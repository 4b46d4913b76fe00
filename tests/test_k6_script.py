"""k6_load_test.js parses, and its scenario is the original's and the same as `mini-forge loadtest`.

k6 is not installable here, so node evaluates the script with stand-ins for the `k6` and
`k6/http` modules that record the requests and report every response as status 200.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mini_forge.loadtest import (
    DEFAULT_STAGES,
    DEFAULT_URLS,
    MAX_FAILED_RATE,
    MAX_P95_MS,
    parse_stages,
    scale_stages,
)
from tests.support import ROOT

SCRIPT = ROOT / "k6_load_test.js"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed")

_K6_STANDINS = {
    "package.json": json.dumps(
        {"type": "module", "exports": {".": "./index.js", "./http": "./http.js"}}
    ),
    "index.js": "export function check(value, checks) {"
    " return Object.values(checks).every((predicate) => predicate(value)); }",
    "http.js": "export default { get(url) { globalThis.requested.push(url);"
    " return { status: 200, body: 'k3Zq9Ab' }; } };",
}

# Sets the k6 globals before the script is evaluated (imports run in order).
_SETUP = "globalThis.__ENV = JSON.parse(process.env.K6_ENV); globalThis.requested = [];"

_PROBE = """
import './setup.js';
import run, { options } from './k6_load_test.js';
const logged = [];
console.log = (line) => logged.push(line);
for (let iteration = 0; iteration < 3; iteration++) {
  globalThis.__VU = 1;
  globalThis.__ITER = iteration;
  run();
}
process.stdout.write(JSON.stringify({ options, requested: globalThis.requested, logged }));
"""


def evaluate_script(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The script's exported options, the URLs of three iterations, and what they logged."""
    assert NODE is not None
    package = tmp_path / "node_modules" / "k6"
    package.mkdir(parents=True)
    for name, text in _K6_STANDINS.items():
        (package / name).write_text(text)
    (tmp_path / "package.json").write_text(json.dumps({"type": "module"}))
    (tmp_path / "setup.js").write_text(_SETUP)
    (tmp_path / "probe.js").write_text(_PROBE)
    shutil.copy(SCRIPT, tmp_path / "k6_load_test.js")
    completed = subprocess.run(
        [NODE, "probe.js"],
        cwd=tmp_path,
        env={"K6_ENV": json.dumps(env)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 0, completed.stderr
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_node_parses_the_script() -> None:
    assert NODE is not None
    completed = subprocess.run([NODE, "--check", str(SCRIPT)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_the_script_imports_nothing_from_the_internet() -> None:
    imports = [line for line in SCRIPT.read_text().splitlines() if line.startswith("import")]
    assert imports == ["import http from 'k6/http';", "import { check } from 'k6';"]


def test_stages_and_thresholds_are_the_originals(tmp_path: Path) -> None:
    options = evaluate_script(tmp_path, {})["options"]
    assert options["stages"] == [
        {"duration": "30s", "target": 50},
        {"duration": "30s", "target": 1000},
        {"duration": "30s", "target": 2000},
        {"duration": "30s", "target": 0},
    ]
    assert options["thresholds"] == {
        "http_req_failed": ["rate<0.01"],
        "http_req_duration": ["p(95)<200"],
    }


def test_loadtest_runs_the_same_scenario_by_default(tmp_path: Path) -> None:
    stages = evaluate_script(tmp_path, {})["options"]["stages"]
    assert [(f"{stage.seconds:g}s", stage.target) for stage in parse_stages(DEFAULT_STAGES)] == [
        (stage["duration"], stage["target"]) for stage in stages
    ]
    assert (MAX_FAILED_RATE, MAX_P95_MS) == (0.01, 200)


def test_scale_shrinks_stages_as_loadtest_does(tmp_path: Path) -> None:
    stages = evaluate_script(tmp_path, {"SCALE": "0.05"})["options"]["stages"]
    expected = scale_stages(parse_stages(DEFAULT_STAGES), 0.05)
    assert [(stage["duration"], stage["target"]) for stage in stages] == [
        (f"{stage.seconds:g}s", stage.target) for stage in expected
    ]


def test_iterations_spread_over_the_default_instances_and_log_each_key(tmp_path: Path) -> None:
    probe = evaluate_script(tmp_path, {})
    assert sorted(probe["requested"]) == [f"{url}/get-key" for url in DEFAULT_URLS]
    assert probe["logged"] == ["KEY:k3Zq9Ab"] * 3


def test_base_urls_come_from_the_environment(tmp_path: Path) -> None:
    probe = evaluate_script(tmp_path, {"BASE_URLS": "http://127.0.0.1:9000/"})
    assert probe["requested"] == ["http://127.0.0.1:9000/get-key"] * 3
