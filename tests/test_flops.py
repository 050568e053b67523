"""flops.py reproduces the official flops_computation.py table and counts our configs."""

import pytest

from keras_electra import flops
from keras_electra.config import PretrainingConfig

# Values printed by the official flops_computation.py (google-research/electra).
OFFICIAL = {
    "electra_small": 1.293743798272e+18,
    "electra_base": 6.424541834277683e+19,
    "electra_400k": 7.117606040895488e+20,
    "bert_small": 1.4187399146496e+18,
    "bert_base": 6.428335104e+19,
}


def test_official_table():
    f = flops.get_electra_train_flops
    got = {
        "electra_small": f(256, 12, 64, 12, 128, 1e6, True, s=128, e=128),
        "electra_base": f(768, 12, 256, 12, 256, 766000, True),
        "electra_400k": f(1024, 24, 256, 24, 2048, 400000, True),
        "bert_small": flops.TransformerHparams(256, 12, e=128, s=128).get_train_flops(128, 1.45e6),
        "bert_base": flops.TransformerHparams(768, 12).get_train_flops(256, 1e6),
    }
    for name, value in OFFICIAL.items():
        assert got[name] == pytest.approx(value, rel=1e-12), name


def test_config_per_example_matches_official_small():
    config = PretrainingConfig.create("f", "/tmp")  # electra small: gen hidden 64, 12 layers
    per_example = flops.train_flops_per_example(config, output_frac=0.15625)
    assert per_example * 128 * 1e6 == pytest.approx(OFFICIAL["electra_small"], rel=1e-12)
    # Default output_frac: what the model computes (19 of 128 positions): a bit less.
    assert flops.train_flops_per_example(config) < per_example


def test_overrides_and_objectives_count():
    base = PretrainingConfig.create("f", "/tmp", vocab_size=200, max_seq_length=32,
                                    model_hparam_overrides={"hidden_size": 32,
                                                            "num_hidden_layers": 1})
    bigger = PretrainingConfig.create("f", "/tmp", vocab_size=200, max_seq_length=32,
                                      model_hparam_overrides={"hidden_size": 64,
                                                              "num_hidden_layers": 2})
    assert flops.train_flops_per_example(bigger) > 2 * flops.train_flops_per_example(base)
    uniform = PretrainingConfig.create("f", "/tmp", uniform_generator=True)
    bert = PretrainingConfig.create("f", "/tmp", electra_objective=False)
    electra = PretrainingConfig.create("f", "/tmp")
    assert flops.train_flops_per_example(uniform) < flops.train_flops_per_example(electra)
    assert flops.train_flops_per_example(bert) > 0
