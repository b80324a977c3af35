"""`callguard corpus build` argument defaults."""

from __future__ import annotations

from plugin.cli import build_parser


def test_corpus_build_leaves_out_the_v7_voice_changers_unless_asked():
    # the default build is the shipped corpus' recipe (v8 skips psola and wsola)
    args = build_parser("corpus").parse_args(["corpus", "build"])
    assert set(args.skip.split(",")) == {"psola", "wsola"}
    args = build_parser("corpus").parse_args(["corpus", "build", "--skip", ""])
    assert args.skip == ""
