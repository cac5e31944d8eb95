"""The demo's secret key (no DJANGO_SECRET_KEY): made once under VAR_DIR and shared by every
process, also by processes that start together on a new machine (a worker and a command)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
READ_KEY = "import backupsite.settings as s; print(s.SECRET_KEY)"


def test_processes_starting_together_share_one_whole_key(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SECRET_KEY"}
    outputs = []
    for attempt in range(5):  # the window is small: several rounds of processes racing for it
        var = tmp_path / f"var{attempt}"
        env["VAR_DIR"] = str(var)
        started = [subprocess.Popen([sys.executable, "-c", READ_KEY], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                    text=True) for _ in range(8)]
        keys = {process.communicate()[0].strip() for process in started}
        outputs.append(keys)
        stored = (var / "secret_key").read_text()
        assert keys == {stored} and len(stored) >= 50, outputs
        assert oct((var / "secret_key").stat().st_mode & 0o777) == "0o600"
        assert os.listdir(var) == ["secret_key"]  # no draft left behind
