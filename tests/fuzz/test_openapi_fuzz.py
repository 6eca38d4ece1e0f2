"""Schemathesis fuzzes Herald's API from Herald's own OpenAPI document.

Every operation gets schema-derived and deliberately invalid requests (the coverage,
fuzzing and stateful phases; no example is in the document, so that phase is skipped),
authenticated as the admin. A 5xx fails the run, and so does a 2xx or 4xx body that does
not match its documented schema or content type. Path parameters name the seeded objects
half of the time (not for DELETE, which would remove them for the rest of the run).
The run is reproducible: deterministic generation (Hypothesis' derandomize), one
worker, no example database carried between runs. `HERALD_FUZZ_EXAMPLES` raises the
bound; `HERALD_FUZZ_SEED` explores further with seeded random generation instead (the
longer runs in docs/RELIABILITY.md are `HERALD_FUZZ_EXAMPLES=1000 HERALD_FUZZ_SEED=…`).
"""

import os
import subprocess
import sys

from conftest import TOKEN

MAX_EXAMPLES = int(os.environ.get("HERALD_FUZZ_EXAMPLES", "100"))
SEED = os.environ.get("HERALD_FUZZ_SEED")
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def config(seeds):
    lines = ["[dictionaries]"]
    for name, values in seeds.items():
        quoted = ", ".join(f'"{value}"' for value in values)
        lines.append(f"{name} = {{ values = [{quoted}] }}")
    lines += ["", "[[operations]]", 'exclude-method = "DELETE"', "[operations.parameters]"]
    for name in seeds:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    return "\n".join(lines) + "\n"


def test_no_server_error_and_responses_match_the_document(herald, seeds, tmp_path, capsys):
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config(seeds))
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config_file),
        "run", f"{herald.url}/api/v1/openapi.json",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES),
        *(["--seed", SEED, "--generation-database", "none"] if SEED
          else ["--generation-deterministic"]),
        "--workers", "1",
        "--request-timeout", "10",
        "--no-color",
    ]
    # About 0.6 s per example per run on a 2-core machine; generous, so only a hang trips it.
    timeout = 600 + 2 * MAX_EXAMPLES
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    output = run.stdout + run.stderr
    # The counts go to the log even when the run passes: they are the figures in
    # docs/RELIABILITY.md.
    counts = [
        line.strip("= ") for line in output.splitlines()
        if " generated" in line or line.startswith("=====")
    ]
    with capsys.disabled():
        print("\nSchemathesis:", " / ".join(counts[-2:]))
    assert run.returncode == 0, output[-30000:]
    assert herald.proc.poll() is None, "herald exited during the run"
    log = herald.log()
    assert "panicked" not in log, log[-10000:]
