"""The local supervisor the envoy_sidecar role ships for hosts without systemd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "roles/envoy_sidecar/files/meshstage-envoy-supervise"


def supervise(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=30, check=False)


def test_start_is_idempotent_and_stop_ends_the_process(tmp_path):
    pidfile, log = str(tmp_path / "x.pid"), str(tmp_path / "x.log")
    command = ["--", sys.executable, "-c", "import time; print('up', flush=True); "
               "time.sleep(60)", "marker-arg"]
    assert supervise("status", "--pidfile", pidfile).returncode == 3
    first = supervise("start", "--pidfile", pidfile, "--log", log, *command)
    assert first.stdout.strip() == "started", first.stderr
    pid = int(Path(pidfile).read_text())
    assert supervise("start", "--pidfile", pidfile, "--log", log, *command).stdout.strip() \
        == "running"
    assert int(Path(pidfile).read_text()) == pid
    assert supervise("status", "--pidfile", pidfile).returncode == 0
    assert supervise("restart", "--pidfile", pidfile, "--log", log, *command).stdout.strip() \
        == "restarted"
    new_pid = int(Path(pidfile).read_text())
    assert new_pid != pid
    assert supervise("stop", "--pidfile", pidfile).stdout.strip() == "stopped"
    assert not Path(pidfile).exists()
    try:
        os.kill(new_pid, 0)
        alive = Path(f"/proc/{new_pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        alive = False
    assert not alive
    assert "up" in Path(log).read_text()


def test_a_reused_pid_of_another_program_is_not_ours(tmp_path):
    pidfile = tmp_path / "x.pid"
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile.write_text(f"{other.pid}\n")
        started = supervise("start", "--pidfile", str(pidfile), "--log", str(tmp_path / "l"),
                            "--", sys.executable, "-c", "import time; time.sleep(60)")
        assert started.stdout.strip() == "started"
        assert int(pidfile.read_text()) != other.pid
    finally:
        other.kill()
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_not_ready_is_an_error(tmp_path):
    result = supervise("start", "--pidfile", str(tmp_path / "p"), "--log", str(tmp_path / "l"),
                       "--ready-url", "http://127.0.0.1:9/ready", "--ready-timeout", "0.3",
                       "--", sys.executable, "-c", "import time; time.sleep(60)")
    try:
        assert result.returncode != 0
        assert "not ready" in result.stderr
    finally:
        os.kill(int((tmp_path / "p").read_text()), signal.SIGKILL)
