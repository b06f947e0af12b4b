"""The same redaction engine on the sample path: request ids and feature values are cleaned
before windows, the label join or state_dir see them, and pseudonymised ids still join."""

from __future__ import annotations

import socket
from pathlib import Path

import msgspec
import pytest

from agent.model import Label, Sample
from agent.redact import Redactor
from plugins.ingest.decode import decode, feature_values
from plugins.ingest.redaction import redact_record
from tests.conftest import ConfigWriter
from tests.helpers import poll, value

EMAIL = "alice.smith@example.com"


def test_a_sample_is_redacted_at_any_depth() -> None:
    redactor = Redactor(("EMAIL", "CARD", "IPV4"), pseudonymise=("EMAIL",), key=b"k")
    sample, _ = decode(msgspec.json.encode({
        "model": "m", "request_id": f"req/{EMAIL}", "prediction": 1,
        "features": {"email": EMAIL, "amount": 12.5, "card": 4111111111111111,
                     "nested": {"ip": "10.0.0.1"}, "tags": ["x", "card 4111 1111 1111 1111"]}}))
    assert isinstance(sample, Sample)
    clean = redact_record(sample, redactor)
    assert isinstance(clean, Sample)
    token = redactor.token("EMAIL", EMAIL)
    assert clean.request_id == f"req/{token}"
    assert feature_values(clean) == {
        "email": token, "amount": 12.5, "card": "[REDACTED:CARD]",
        "nested": {"ip": "[REDACTED:IP]"}, "tags": ["x", "card [REDACTED:CARD]"]}
    label = redact_record(Label(model="m", request_id=f"req/{EMAIL}", label=1), redactor)
    assert label.request_id == clean.request_id  # the join still finds its prediction
    untouched = Sample(model="m", request_id="r-1", prediction=0, features={"a": 1.0})
    assert redact_record(untouched, redactor) is untouched


def test_redactions_are_counted_per_rule_and_bounded() -> None:
    """One series per configured rule, zeros included; custom rules past 16 as _other; the
    probe that decides whether to decode features counts nothing."""
    from agent.metrics import Accumulator  # noqa: PLC0415
    from agent.redact import CustomRule  # noqa: PLC0415
    from plugins.ingest.stats import MAX_RULE_LABELS, REDACTIONS, _redactions  # noqa: PLC0415

    custom = [CustomRule(name=f"R{i}", pattern=f"secret{i}x") for i in range(20)]
    redactor = Redactor(("EMAIL", "CARD", *(c.name for c in custom)), custom=custom)
    assert redactor.touches(f"{EMAIL} secret19x")
    assert not redactor.counts
    redactor.redact(f"{EMAIL} {EMAIL} secret0x secret15x secret16x secret19x secret19x")
    out = Accumulator()
    _redactions(out, redactor)
    series = {labels[0]: v for labels, v in out.series[REDACTIONS].items()}
    assert len(series) == MAX_RULE_LABELS + 1
    assert series["EMAIL"] == 2
    assert series["CARD"] == 0
    assert series["R0"] == 1
    assert "R14" not in series  # EMAIL, CARD, R0..R13 fill the 16 labels
    assert series["_other"] == 4  # R15 once, R16 once, R19 twice


def test_a_deeply_nested_feature_is_redacted() -> None:
    redactor = Redactor(("EMAIL",))
    nested: object = EMAIL
    for _ in range(700):  # decodes; the redaction recursed past Python's limit
        nested = [nested]
    sample, _ = decode(msgspec.json.encode({"model": "m", "request_id": "r", "prediction": 1,
                                            "features": {"deep": nested}}))
    assert isinstance(sample, Sample)
    clean = redact_record(sample, redactor)
    assert EMAIL not in msgspec.json.encode(feature_values(clean)).decode()


def test_the_ingest_config_names_known_rules(write_config: ConfigWriter) -> None:
    from agent.config import load_config  # noqa: PLC0415
    from agent.errors import ConfigError  # noqa: PLC0415
    from agent.loader import discover  # noqa: PLC0415

    path, _ = write_config('[plugins.ingest]\nredact = ["EMAIL", "PHONE"]\n')
    with pytest.raises(ConfigError, match=r"plugins.ingest.redact: unknown rules \['PHONE'\]"):
        load_config(path, discover().config_models())


@pytest.mark.integration
def test_no_pii_lands_in_state_dir(write_config: ConfigWriter, agent_factory,
                                   tmp_path: Path) -> None:
    key = tmp_path / "hmac.key"
    key.write_text("a long random key\n")
    sock = tmp_path / "ingest.sock"
    config, port = write_config(
        f'[plugins.host]\nenabled = false\n[plugins.ingest]\nenabled = true\n'
        f'interval = "100ms"\nsocket_path = "{sock}"\nredact = ["EMAIL", "CARD"]\n'
        f'[plugins.ingest.redaction]\npseudonymise = ["EMAIL"]\nkey = {{file = "{key}"}}\n')
    agent = agent_factory(config, port)
    samples = b"".join(msgspec.json.encode({
        "model": "m", "request_id": f"u{i}/{EMAIL}", "prediction": i % 2,
        "features": {"who": f"user{i}@example.com", "card": "4111 1111 1111 1111", "x": i}})
        + b"\n" for i in range(20))
    labels = b"".join(msgspec.json.encode({"model": "m", "request_id": f"u{i}/{EMAIL}",
                                           "label": i % 2}) + b"\n" for i in range(10))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.connect(str(sock))
        client.sendall(samples + labels)
    poll(lambda: value(agent.scrape(), "inferwatch_labels_joined_total", model="m") == 10,
         what="pseudonymised labels joined their predictions")
    poll(lambda: value(agent.scrape(), "inferwatch_label_join_waiting", kind="predictions")
         == 10, what="the other predictions stored")
    text = agent.scrape()  # each value once: 20 ids, 20 features and 10 label ids; 20 cards
    assert value(text, "inferwatch_ingest_redactions_total", rule="EMAIL") == 50
    assert value(text, "inferwatch_ingest_redactions_total", rule="CARD") == 20
    agent.stop()
    state = tmp_path / "state"
    stored = b"".join(p.read_bytes() for p in state.rglob("*") if p.is_file())
    assert b"u1/" in stored  # the join store holds the (pseudonymised) ids
    assert b"example.com" not in stored
    assert b"4111" not in stored


def _replay(tmp_path: Path, redaction: str) -> list[dict[str, object]]:
    from tests.helpers import run_cli  # noqa: PLC0415

    key = tmp_path / "hmac.key"
    key.write_text("k\n")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nstate_dir = "{tmp_path / "state"}"\n[plugins.ingest]\n'
                      f'redact = ["EMAIL"]\n{redaction.format(key=key)}')
    start = 1_800_000_000
    samples, labels = tmp_path / "s.ndjson", tmp_path / "l.ndjson"
    samples.write_bytes(b"".join(msgspec.json.encode({
        "model": "m", "request_id": f"user{i}@example.com", "ts": start + i,
        "prediction": i % 2, "features": {"x": float(i)}}) + b"\n" for i in range(50)))
    labels.write_bytes(b"".join(msgspec.json.encode({
        "model": "m", "request_id": f"user{i}@example.com", "ts": start + i, "label": i % 2})
        + b"\n" for i in range(50)))
    done = run_cli("replay", "-c", str(config), "--samples", str(samples), "--labels",
                   str(labels), "--window", "1h")
    assert done.returncode == 0, done.stderr
    return [w for w in map(msgspec.json.decode, done.stdout.splitlines())
            if w["type"] == "window" and w["final"]]


@pytest.mark.integration
def test_replay_redacts_as_the_agent_does(tmp_path: Path) -> None:
    """Masked request ids collapse into one (documented: pseudonymise ids instead); the
    pseudonymised ones still join. Replay must show what the agent would do."""
    masked = _replay(tmp_path, "")
    assert [w["n_labeled"] for w in masked] == [1]
    pseudonymised = _replay(tmp_path, '[plugins.ingest.redaction]\npseudonymise = ["EMAIL"]\n'
                                      'key = {{file = "{key}"}}\n')
    assert [w["n_labeled"] for w in pseudonymised] == [50]
