"""The random streams keep their seeds: a stored run's rerun must draw what the run drew."""

from trainer.seeds import mixup_seed, order_seed, sample_seed


def test_each_stream_keeps_its_seed():
    # (seed * 1_000_003 + epoch * 1_009 + stream): order is stream 0, mixup 2, image k 1000 + k.
    assert order_seed(1234, 3) == 1_234_006_729
    assert mixup_seed(1234, 3) == 1_234_006_731
    assert sample_seed(1234, 3, 5) == 1_234_007_734
    assert order_seed(0, 0) == 0 and mixup_seed(7, 1) == 7_001_032
