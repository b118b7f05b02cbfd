"""`fundarb run`: a paper run starts from a fresh journal (its simulated venue starts empty)."""

from __future__ import annotations

from fundarb.cli.run import rotate_paper_journal
from fundarb.config import load_config


def test_paper_journal_is_moved_aside_live_never(tmp_path):
    (tmp_path / "journal.sqlite3").write_bytes(b"old")
    (tmp_path / "journal.sqlite3-wal").write_bytes(b"wal")
    paper = load_config({"FUNDARB_DATA_DIR": str(tmp_path)})
    moved = rotate_paper_journal(paper, now=0)
    assert moved == tmp_path / "journal.paper-19700101T000000.sqlite3"
    assert moved.read_bytes() == b"old" and (tmp_path / "journal.paper-19700101T000000.sqlite3-wal").exists()
    assert not (tmp_path / "journal.sqlite3").exists()
    assert rotate_paper_journal(paper) is None  # nothing left to move

    (tmp_path / "journal.sqlite3").write_bytes(b"live")
    testnet = load_config(
        {
            "FUNDARB_DATA_DIR": str(tmp_path),
            "FUNDARB_MODE": "testnet",
            "FUNDARB_VENUES": "binance",
            "FUNDARB_BINANCE_API_KEY": "k" * 64,
            "FUNDARB_BINANCE_API_SECRET": "s" * 64,
        }
    )
    assert rotate_paper_journal(testnet) is None
    assert (tmp_path / "journal.sqlite3").read_bytes() == b"live"
