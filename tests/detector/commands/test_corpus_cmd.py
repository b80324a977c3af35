"""`callguard corpus build` argument defaults."""

from __future__ import annotations

from plugin.cli import build_parser


def test_corpus_build_leaves_out_the_v7_voice_changers_and_the_v11_neural_families_unless_asked():
    # the default build is the shipped corpus' recipe (v8: no psola, wsola, kokoro, hibari, hifigan16k)
    args = build_parser("corpus").parse_args(["corpus", "build"])
    assert set(args.skip.split(",")) == {"psola", "wsola", "kokoro", "hibari", "hifigan16k"}
    args = build_parser("corpus").parse_args(["corpus", "build", "--skip", ""])
    assert args.skip == ""
