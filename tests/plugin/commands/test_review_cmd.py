"""`callguard review list|show|label|export` against a real review store."""

from __future__ import annotations

import json

import numpy as np
import pytest

from plugin.cli import main
from plugin.review import ReviewStore


@pytest.fixture()
def store_dir(tmp_path):
    root = tmp_path / "rv"
    with ReviewStore(root) as store:
        for i, (call, verdict) in enumerate((("c1", "spoof"), ("c1", "spoof"), ("c2", "suspicious"))):
            store.add(np.full(16000, 0.01 * (i + 1), np.float32), call_id=call, score=0.9 - 0.1 * i, verdict=verdict,
                      leg="caller", policy="default", detector="gbm", detector_version="v1", chunk_index=i,
                      created_at=1000.0 + i)
    return root


def test_label_then_list_and_show_the_history(store_dir, capsys, tmp_path):
    assert main(["review", "--store", str(store_dir), "label", "1", "2", "bona fide", "--reviewer", "alice"]) == 0
    assert main(["review", "--store", str(store_dir), "label", "2", "replay", "--reviewer", "bob",
                 "--note", "room echo"]) == 0
    out = capsys.readouterr().out
    assert "item 2: replay (by bob; 2 label(s) in its history)" in out
    assert main(["review", "--store", str(store_dir), "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [3, 2, 1]  # unlabelled first
    assert [r["label"] for r in rows] == [None, "replay", "bonafide"]
    assert main(["review", "--store", str(store_dir), "list", "--unlabelled"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 2 and table[1].split()[0] == "3"
    wav = tmp_path / "item2.wav"
    assert main(["review", "--store", str(store_dir), "show", "2", "--wav", str(wav)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert [(h["label"], h["reviewer"]) for h in shown["history"]] == [("bonafide", "alice"), ("replay", "bob")]
    assert shown["history"][1]["note"] == "room echo" and wav.stat().st_size > 32000


def test_bad_label_unknown_item_and_missing_store_fail_with_one_line(store_dir, tmp_path, capsys):
    assert main(["review", "--store", str(store_dir), "label", "1", "deepfake?", "--reviewer", "a"]) == 2
    assert "unknown label" in capsys.readouterr().err
    assert main(["review", "--store", str(store_dir), "label", "99", "synthetic", "--reviewer", "a"]) == 1
    assert "no item 99" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="no review store"):
        main(["review", "--store", str(tmp_path / "nowhere"), "list"])


def test_export_writes_only_usable_labels(store_dir, tmp_path, capsys):
    main(["review", "--store", str(store_dir), "label", "1", "synthetic", "--reviewer", "a"])
    main(["review", "--store", str(store_dir), "label", "2", "unsure", "--reviewer", "a"])
    assert main(["review", "--store", str(store_dir), "export", str(tmp_path / "out")]) == 0
    assert "exported 1 labelled item(s)" in capsys.readouterr().out
    from detector.corpus.manifest import load_manifest

    rows = load_manifest(tmp_path / "out")
    assert [(r["item_id"], r["label"], r["split"]) for r in rows] == [("1", "spoof", "review")]


def test_store_comes_from_the_config_capture_dir(store_dir, tmp_path, capsys):
    cfg = tmp_path / "callguard.toml"
    cfg.write_text(f'[ari]\npassword = "x"\n[capture]\nenabled = true\ndir = "{store_dir}"\n')
    assert main(["review", "--config", str(cfg), "list", "--json"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
