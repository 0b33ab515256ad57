"""``rfy claims`` on the held-out seeds: records carry each claim's digest, the table counts them apart.

Uses the toy chapter of the fault suite (``test_faults``), so each run takes milliseconds.
"""
import json

from rfy.claims import claim_digest
from test_faults import claims, cli, toy  # noqa: F401  (toy is the fixture that registers the chapter)


def test_held_out_sweep_records_digests_and_fills_the_held_out_columns(toy, capsys):  # noqa: F811
    assert cli("claims", "toy", "--seeds", "0-1") == 0
    assert "are held out" not in capsys.readouterr().out
    assert cli("claims", "toy", "--seeds", "10-11") == 0
    assert "Seeds 10-19 are held out: the thresholds were set on seeds 0-9" in capsys.readouterr().out
    record = json.loads((toy / "rfy_results" / "toy" / "reduced-seed10.json").read_text())
    [stored] = record["claims"]
    [current] = claims(record["metrics"])
    assert stored["digest"] == current.digest == claim_digest(stored)
    assert cli("results", "robustness") == 0
    out = capsys.readouterr().out
    assert "| toy | the weight ends near 1 | ≤ 0.90 | 2/2 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| toy"))
    assert row.split("|")[7].strip() == "2/2"  # the held-out group: seeds 10 and 11
    assert "set on seeds 0, 1; commit" in out and "held out: seeds 10, 11, run at commit" in out
