import json

import pytest

from keras_electra.config import PretrainingConfig

# Values read from google-research/electra configure_pretraining.py.
OFFICIAL_DEFAULTS = {
    "debug": False, "do_train": True, "do_eval": False, "electra_objective": True,
    "gen_weight": 1.0, "disc_weight": 50.0, "mask_prob": 0.15, "learning_rate": 5e-4,
    "lr_decay_power": 1.0, "weight_decay_rate": 0.01, "num_warmup_steps": 10000,
    "iterations_per_loop": 200, "save_checkpoints_steps": 1000,
    "num_train_steps": 1000000, "num_eval_steps": 100, "keep_checkpoint_max": 5,
    "model_size": "small", "model_hparam_overrides": {}, "embedding_size": 128,
    "vocab_size": 30522, "do_lower_case": True, "uniform_generator": False,
    "two_tower_generator": False, "untied_generator_embeddings": False,
    "untied_generator": True, "generator_layers": 1.0, "generator_hidden_size": 0.25,
    "disallow_correct": False, "temperature": 1.0, "max_seq_length": 128,
    "train_batch_size": 128, "eval_batch_size": 128, "use_tpu": False,
    "num_tpu_cores": 1, "tpu_job_name": None, "tpu_name": None, "tpu_zone": None,
    "gcp_project": None, "max_predictions_per_seq": 19,
}


def test_official_defaults_and_layout():
    config = PretrainingConfig.create("my-model", "/data")
    for name, value in OFFICIAL_DEFAULTS.items():
        assert getattr(config, name) == value, name
    assert config.pretrain_tfrecords == "/data/pretrain_tfrecords/pretrain_data.tfrecord*"
    assert config.vocab_file == "/data/vocab.txt"
    assert config.model_dir == "/data/models/my-model"
    assert config.results_txt == "/data/models/my-model/results/unsup_results.txt"
    assert config.results_pkl == "/data/models/my-model/results/unsup_results.pkl"


@pytest.mark.parametrize("size,expected", [
    ("small", dict(hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                   intermediate_size=1024, embedding_size=128, gen_hidden=64,
                   learning_rate=5e-4, train_batch_size=128, max_seq_length=128,
                   mask_prob=0.15, max_predictions_per_seq=19)),
    ("base", dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, embedding_size=768, gen_hidden=256,
                  learning_rate=2e-4, train_batch_size=256, max_seq_length=512,
                  mask_prob=0.15, max_predictions_per_seq=79)),
    ("large", dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                   intermediate_size=4096, embedding_size=1024, gen_hidden=256,
                   learning_rate=2e-4, train_batch_size=2048, max_seq_length=512,
                   mask_prob=0.25, max_predictions_per_seq=130)),
])
def test_size_defaults(size, expected):
    config = PretrainingConfig.create(model_size=size)
    bert, gen = config.bert_config(), config.generator_config()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "embedding_size"):
        assert bert[key] == expected[key], key
    assert gen["hidden_size"] == expected["gen_hidden"]
    assert gen["num_attention_heads"] == max(1, expected["gen_hidden"] // 64)
    assert gen["intermediate_size"] == 4 * expected["gen_hidden"]
    assert gen["num_hidden_layers"] == bert["num_hidden_layers"]
    for key in ("learning_rate", "train_batch_size", "max_seq_length", "mask_prob",
                "max_predictions_per_seq"):
        assert getattr(config, key) == expected[key], key


def test_user_values_beat_size_and_debug_defaults():
    config = PretrainingConfig.create(model_size="base", learning_rate=1e-4,
                                      max_seq_length=128, debug=True, train_batch_size=16)
    assert config.learning_rate == 1e-4
    assert config.max_seq_length == 128 and config.max_predictions_per_seq == 19
    assert config.train_batch_size == 16  # user value over debug's 8
    assert config.num_train_steps == 20 and config.eval_batch_size == 4  # debug shrink
    assert config.bert_config()["hidden_size"] == 144  # run_pretraining's debug model


def test_model_hparam_overrides_reapplied_after_derived_sizes():
    config = PretrainingConfig.create(model_hparam_overrides={
        "hidden_size": 128, "num_attention_heads": 8})
    bert = config.bert_config()
    assert bert["hidden_size"] == 128
    assert bert["num_attention_heads"] == 8  # override wins over hidden // 64
    assert bert["intermediate_size"] == 512  # derived from the overridden hidden


def test_overrides_from_dict_json_string_and_file(tmp_path):
    path = tmp_path / "hparams.json"
    # The Spanish seed's hparams file, strings and all.
    seed_hparams = {"do_train": "true", "do_eval": "false", "model_size": "small",
                    "do_lower_case": "false", "vocab_size": 119547,
                    "num_train_steps": 100, "save_checkpoints_steps": 100,
                    "train_batch_size": 32}
    path.write_text(json.dumps(seed_hparams))
    for source in (seed_hparams, json.dumps(seed_hparams), str(path)):
        config = PretrainingConfig.from_hparams(source, model_name="es", data_dir="d")
        assert config.do_eval is False and config.do_lower_case is False
        assert config.do_train is True
        assert config.vocab_size == 119547 and config.train_batch_size == 32
        assert config.model_dir == "d/models/es"
    config = PretrainingConfig.from_hparams(str(path), learning_rate="3e-4")
    assert config.learning_rate == 3e-4


def test_unknown_hparam_names_closest_valid_name():
    with pytest.raises(ValueError, match="Unknown hparam 'lerning_rate'.*'learning_rate'"):
        PretrainingConfig.create(lerning_rate=1e-3)
    with pytest.raises(ValueError, match="'hiden_size'.*'hidden_size'"):
        PretrainingConfig.create(model_hparam_overrides={"hiden_size": 64})


@pytest.mark.parametrize("hparams,field", [
    ({"mask_prob": 0.0}, "mask_prob"),
    ({"mask_prob": 1.5}, "mask_prob"),
    ({"model_hparam_overrides": {"hidden_size": 100, "num_attention_heads": 3}}, "hidden_size"),
    ({"max_seq_length": 1024}, "max_seq_length"),
    ({"train_batch_size": 0}, "train_batch_size"),
    ({"vocab_size": -5}, "vocab_size"),
    ({"embedding_size": 0}, "embedding_size"),
    ({"model_hparam_overrides": {"num_hidden_layers": 0}}, "num_hidden_layers"),
    ({"generator_hidden_size": 2.0}, "generator_hidden_size"),
    ({"electric_objective": True}, "electric_objective"),
    ({"temperature": 0}, "temperature"),
    ({"num_train_steps": "many"}, "num_train_steps"),
])
def test_invalid_values_raise_naming_the_field(hparams, field):
    with pytest.raises(ValueError, match=field):
        PretrainingConfig.create(**hparams)


def test_bad_hparams_text_and_missing_file():
    with pytest.raises(ValueError, match="not valid JSON"):
        PretrainingConfig.from_hparams("{learning_rate: }")
    with pytest.raises(ValueError, match="does not exist"):
        PretrainingConfig.from_hparams("no/such/hparams.json")


def test_json_round_trip(tmp_path):
    config = PretrainingConfig.create("m", "gs://bucket", model_size="base",
                                      model_hparam_overrides={"hidden_dropout_prob": 0.0,
                                                              "attention_probs_dropout_prob": 0.0},
                                      learning_rate=1e-4, seed=7)
    path = tmp_path / "config.json"
    config.to_json(str(path))
    assert PretrainingConfig.from_json(str(path)) == config
    assert PretrainingConfig.from_json(config.to_json()) == config
    assert not list(tmp_path.glob("*.tmp-*"))  # written atomically
