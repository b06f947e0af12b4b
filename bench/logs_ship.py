"""tail -> parse -> redact -> rsyslog: the real agent beside `tail -F | sed -E` and rsyslog's
own imfile input, on the same file of 200-byte mixed lines, in the same run.

Each contender reads the whole file (written before it starts) and its output is complete
when it holds every line. Reported: wall time, lines/s, and for the agent its CPU seconds
(user + system, from /proc) and lines per CPU second, the figure for "one core"; peak RSS.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.logs import SED, mixed_lines  # noqa: E402
from tests.logs.harness import FAST_POLL, logs_agent  # noqa: E402


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_lines(path: Path, count: int, timeout: float = 120) -> float:
    """When `path` holds `count` lines; read incrementally (a re-count would cost the
    contenders CPU on a two-core machine)."""
    start, seen, offset = time.monotonic(), 0, 0
    while seen < count:
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{path}: {seen} of {count} lines")
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                data = f.read()
            offset += len(data)
            seen += data.count(b"\n")
        time.sleep(0.02)
    return time.monotonic()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _rsyslog(folder: Path, inputs: str) -> tuple[subprocess.Popen[bytes], Path]:
    folder.mkdir(parents=True)
    out = folder / "out.log"
    conf = folder / "rs.conf"
    conf.write_text(f"""
global(workDirectory="{folder}" maxMessageSize="1m" parser.escapeControlCharactersOnReceive="off")
{inputs}
template(name="msgonly" type="string" string="%msg%\\n")
action(type="omfile" file="{out}" template="msgonly" asyncWriting="on" ioBufferSize="1m")
""")
    proc = subprocess.Popen(["rsyslogd", "-n", "-f", str(conf), "-i", str(folder / "pid")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, out


def _wait_ready(port: int) -> None:
    for _ in range(600):
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as sock:
                sock.sendall(b"GET /-/ready HTTP/1.0\r\n\r\n")
                if b"200" in sock.recv(100):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError("agent not ready")


def _launch(folder: Path, log: Path, syslog_port: int,
            logs: str = "") -> tuple[subprocess.Popen[bytes], int]:
    """The agent (its metrics port) tailing `log` into syslog on `syslog_port`; `logs` adds
    [plugins.logs] settings. Not yet ready: the caller waits, inside its own cleanup."""
    folder.mkdir()
    port = _port()
    config = folder / "agent.toml"
    config.write_text(logs_agent(str(folder / "state"), port, logs) + f"""
[[plugins.logs.inputs]]
paths = ["{log}"]
[[plugins.logs.outputs]]
type = "syslog"
port = {syslog_port}
""")
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(config)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, port


def _agent(folder: Path, log: Path, staged: Path, syslog_port: int,
           count: int) -> dict[str, float]:
    proc, port = _launch(folder, log, syslog_port, FAST_POLL)
    rs_out = folder.parent / "rs-tcp" / "out.log"
    try:
        _wait_ready(port)
        idle = _cpu(proc.pid)  # start-up (imports) excluded: a daemon pays it once
        began = time.monotonic()
        staged.rename(log)  # the whole file appears at once
        done = _wait_lines(rs_out, count)
        cpu, rss = _cpu(proc.pid), _rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"wall": done - began, "cpu": cpu - idle, "rss": rss}


def bench_ship(count: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="logs-bench-"))
    try:
        _run(folder, count)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, count: int) -> None:
    log = folder / "app.log"
    block = mixed_lines(20_000)
    with log.open("w") as f:
        for i in range(0, count, len(block)):
            f.write("\n".join(block[:count - i]) + "\n")
    size = log.stat().st_size
    mb = size / 1e6
    tcp_port = _port()
    rsyslog, _ = _rsyslog(folder / "rs-tcp", f'module(load="imtcp")\n'
                          f'input(type="imtcp" port="{tcp_port}" address="127.0.0.1")')
    time.sleep(0.5)
    try:
        staged = folder / "staged.log"
        log.rename(staged)
        ours = _agent(folder / "agent", log, staged, tcp_port, count)
    finally:
        rsyslog.terminate()
        rsyslog.wait(10)
    print(f"{count} lines, {mb:.0f} MB of 200-byte mixed lines (typical mix)")
    print(f"inferwatch tail->redact->rsyslog(imtcp): {ours['wall']:.1f} s wall "
          f"({count / ours['wall'] / 1000:.0f}k lines/s), "
          f"agent CPU {ours['cpu']:.1f} s = {count / ours['cpu'] / 1000:.0f}k lines per "
          f"CPU-second, peak RSS {ours['rss']:.0f} MiB")
    sed_out = folder / "sed.out"
    began = time.monotonic()
    with sed_out.open("wb") as out:
        tail = subprocess.Popen(["tail", "-n", "+1", "-F", str(log)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        # Line-buffered output (a pipeline that passes lines on must flush them), buffered
        # input; `sed -u` would also read byte by byte.
        sed = subprocess.Popen(["stdbuf", "-oL", "sed", *SED], stdin=tail.stdout,
                               stdout=out)
        try:
            done = _wait_lines(sed_out, count)
        finally:
            tail.terminate()
            tail.wait()
            sed.wait(30)
    wall = done - began
    print(f"tail -F | stdbuf -oL sed -E (same four substitutions, no Luhn): {wall:.1f} s wall "
          f"({count / wall / 1000:.0f}k lines/s)")
    imfile, im_out = _rsyslog(folder / "rs-imfile",
                              f'module(load="imfile")\ninput(type="imfile" File="{log}" '
                              f'Tag="app" ReadMode="0")')
    began = time.monotonic()
    try:
        done = _wait_lines(im_out, count)
    finally:
        imfile.terminate()
        imfile.wait(10)
    wall = done - began
    print(f"rsyslog imfile -> omfile (no redaction): {wall:.1f} s wall "
          f"({count / wall / 1000:.0f}k lines/s)")


def bench_soak(seconds: int, rate: int) -> None:
    """`rate` lines/s for `seconds` through the agent into rsyslog (discarding), the file
    rotated every 100,000 lines; the agent's RSS every 30 s."""
    folder = Path(tempfile.mkdtemp(prefix="logs-soak-"))
    try:
        port = _port()
        rsyslog = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(_soak_rsyslog(folder, port)), "-i",
             str(folder / "rs.pid")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = folder / "app.log"
        log.touch()
        agent = _start_agent(folder / "agent", log, port)
        try:
            _soak(agent, log, seconds, rate)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(30)
            rsyslog.terminate()
            rsyslog.wait(10)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _soak_rsyslog(folder: Path, port: int) -> Path:
    conf = folder / "rs.conf"
    conf.write_text(f'global(workDirectory="{folder}" maxMessageSize="1m")\n'
                    f'module(load="imtcp")\ninput(type="imtcp" port="{port}" '
                    f'address="127.0.0.1")\naction(type="omfile" file="/dev/null")\n')
    return conf


def _start_agent(folder: Path, log: Path, syslog_port: int) -> subprocess.Popen[bytes]:
    proc, port = _launch(folder, log, syslog_port)
    _wait_ready(port)
    return proc


def _soak(agent: subprocess.Popen[bytes], log: Path, seconds: int, rate: int) -> None:
    block = "\n".join(mixed_lines(rate // 10)) + "\n"
    began = time.monotonic()
    written, samples, next_sample = 0, [], began
    while time.monotonic() - began < seconds:
        with log.open("a") as f:
            f.write(block)
        written += rate // 10
        if written % 100_000 < rate // 10:
            log.rename(log.with_name("app.log.1"))  # the old .1 is replaced (deleted)
            log.touch()
        if time.monotonic() >= next_sample:
            samples.append((round(time.monotonic() - began), _rss_now(agent.pid)))
            next_sample += 30
        time.sleep(max(0.0, began + written / rate - time.monotonic()))
    cpu = _cpu(agent.pid)
    print(f"soak: {written} lines at {rate}/s for {seconds} s, agent CPU {cpu:.0f} s "
          f"({cpu / seconds * 100:.0f}% of a core); RSS MiB by second: {samples}")


def _rss_now(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0
