import dataclasses
import hashlib
import json

import pytest
from pretrain_helpers import copy_data_dir, hparams, shared_data_dir  # noqa: F401 (fixture)

from keras_electra import cli, config as config_lib
from keras_electra.config import BERT_HPARAMS, PretrainingConfig
from keras_electra.errors import InputError

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
    ({"model_hparam_overrides": {"hidden_size": 100, "num_attention_heads": 3}}, "hidden_size"),
    ({"max_seq_length": 1024}, "max_seq_length"),
    ({"generator_hidden_size": 0.001}, "hidden_size"),  # a 0-wide generator
    ({"electric_objective": True}, "electric_objective"),
    ({"gen_weight": 0, "disc_weight": 0}, "disc_weight"),
    ({"electra_objective": False, "gen_weight": 0}, "gen_weight"),
    ({"max_predictions_per_seq": 129}, "max_predictions_per_seq"),
    ({"gradient_accumulation_steps": 3}, "gradient_accumulation_steps"),
])
def test_invalid_combinations_raise_naming_the_field(hparams, field):
    with pytest.raises(InputError, match=f"hparam '{field}'"):
        PretrainingConfig.create(**hparams)


# (hparam, bad value, the value and the allowed range as the message shows them).
# Every numeric hparam (and model_hparam_overrides entry) has a row: see the test below.
BAD_VALUES = [
    ("learning_rate", -1, "-1.0", "a number > 0"),
    ("learning_rate", 0, "0.0", "> 0"),
    ("learning_rate", "nan", "nan", "> 0"),
    ("learning_rate", None, "null", "> 0"),
    ("lr_decay_power", -1, "-1.0", ">= 0"),
    ("weight_decay_rate", -0.01, "-0.01", ">= 0"),
    ("num_warmup_steps", -1, "-1", "an integer >= 0"),
    ("gen_weight", -1, "-1.0", ">= 0"),
    ("disc_weight", -50, "-50.0", ">= 0"),
    ("disc_weight", "Infinity", "inf", ">= 0"),
    ("mask_prob", 0, "0.0", "in (0, 1]"),
    ("mask_prob", 1.5, "1.5", "in (0, 1]"),
    ("temperature", 0, "0.0", "> 0"),
    ("temperature", "inf", "inf", "> 0"),
    ("generator_layers", 0, "0.0", "in (0, 1]"),
    ("generator_hidden_size", 2.0, "2.0", "in (0, 1]"),
    ("train_batch_size", 0, "0", "an integer >= 1"),
    ("eval_batch_size", -8, "-8", ">= 1"),
    ("num_train_steps", 0, "0", ">= 1"),
    ("num_train_steps", 2.5, "2.5", "an integer"),
    ("num_train_steps", "many", "'many'", "an integer"),
    ("num_train_steps", "inf", "'inf'", "an integer"),
    ("num_train_steps", True, "true", "an integer"),
    ("num_eval_steps", 0, "0", ">= 1"),
    ("iterations_per_loop", 0, "0", ">= 1"),
    ("save_checkpoints_steps", -1, "-1", ">= 1"),
    ("keep_checkpoint_max", -1, "-1", ">= 0, or null"),
    ("embedding_size", 0, "0", ">= 1, or null"),
    ("vocab_size", -5, "-5", ">= 1"),
    ("max_seq_length", 0, "0", ">= 1"),
    ("num_tpu_cores", 0, "0", ">= 1"),
    ("max_predictions_per_seq", 0, "0", ">= 1"),
    ("seed", 2 ** 31, "2147483648", "in [-2147483648, 2147483647]"),
    ("gradient_accumulation_steps", 0, "0", ">= 1"),
    ("max_hours", 0, "0.0", "> 0, or null"),
    ("log_every_steps", 0, "0", ">= 1"),
    ("peak_tflops", -1, "-1.0", "> 0, or null"),
    # booleans, closed sets, strings
    ("do_eval", "maybe", "'maybe'", "true or false"),
    ("debug", 2, "2", "true or false"),
    ("do_train", None, "null", "true or false"),
    ("strip_accents", [], "[]", "true or false, or null"),
    ("model_size", "huge", "'huge'", "one of 'small', 'base', 'large'"),
    ("precision", "fp64", "'fp64'", "one of 'fp32', 'bf16', 'fp16'"),
    ("embedding_sharing", "shared", "'shared'", "one of 'tied', 'gdes', 'untied'"),
    ("embedding_sharing", None, "null", "(default \"tied\")"),
    ("model_name", "", "''", "a non-empty string"),
    ("vocab_file", 5, "5", "a string"),
    ("model_hparam_overrides", None, "null", "a JSON object"),
    # model_hparam_overrides entries
    ("model_hparam_overrides.hidden_size", "x", "'x'", "an integer >= 1"),
    ("model_hparam_overrides.num_hidden_layers", 0, "0", ">= 1"),
    ("model_hparam_overrides.num_attention_heads", 0, "0", ">= 1"),
    ("model_hparam_overrides.intermediate_size", -1, "-1", ">= 1"),
    ("model_hparam_overrides.vocab_size", 0, "0", ">= 1"),
    ("model_hparam_overrides.max_position_embeddings", 0, "0", ">= 1"),
    ("model_hparam_overrides.type_vocab_size", 0, "0", ">= 1"),
    ("model_hparam_overrides.hidden_dropout_prob", 1.0, "1.0", "in [0, 1)"),
    ("model_hparam_overrides.attention_probs_dropout_prob", -0.1, "-0.1", "in [0, 1)"),
    ("model_hparam_overrides.initializer_range", 0, "0.0", "> 0"),
    ("model_hparam_overrides.hidden_act", "bogus", "'bogus'", "an activation name"),
]


def _as_hparams(name, value):
    if name.startswith("model_hparam_overrides."):
        return {"model_hparam_overrides": {name.partition(".")[2]: value}}
    return {name: value}


@pytest.mark.parametrize("name,value,shown,allowed", BAD_VALUES)
def test_bad_value_names_hparam_value_and_range(name, value, shown, allowed):
    """Python API and JSON (string) hparams both fail, before any model exists."""
    for build in (lambda hp: PretrainingConfig.create(**hp),
                  lambda hp: PretrainingConfig.from_hparams(json.dumps(hp))):
        with pytest.raises(InputError) as err:
            build(_as_hparams(name, value))
        message = str(err.value)
        assert message.startswith(f"hparam '{name}' = {shown} is not allowed: "), message
        assert f"it must be {allowed}" in message or allowed in message, message


def test_every_numeric_hparam_has_a_range_and_a_bad_value_row():
    tested = {row[0] for row in BAD_VALUES}
    numeric = {f.name for f in dataclasses.fields(PretrainingConfig) if f.type in (int, float)}
    numeric |= {f"model_hparam_overrides.{k}" for k, kind in BERT_HPARAMS.items()
                if kind in (int, float)}
    assert numeric - tested == set()
    assert {n.rpartition(".")[2] for n in numeric} <= set(config_lib._RULES)


@pytest.mark.parametrize("hparams", [
    {"mask_prob": 1.0}, {"lr_decay_power": 0}, {"weight_decay_rate": 0},
    {"num_warmup_steps": 0}, {"gen_weight": 0}, {"disc_weight": 0},
    {"keep_checkpoint_max": 0}, {"keep_checkpoint_max": None}, {"seed": -1},
    {"generator_layers": 1.0, "generator_hidden_size": 1.0}, {"temperature": 0.01},
    {"model_hparam_overrides": {"hidden_dropout_prob": 0.0, "hidden_act": "relu"}},
    {"max_seq_length": 4}, {"max_hours": "0.5"}, {"do_eval": 1, "debug": "no"},
])
def test_boundary_values_the_official_code_trains_with_are_accepted(hparams):
    config = PretrainingConfig.create(**hparams)
    assert 1 <= config.max_predictions_per_seq <= config.max_seq_length


def test_setting_a_bad_value_later_fails_and_keeps_the_old_one():
    config = PretrainingConfig.create()
    with pytest.raises(InputError, match=r"hparam 'learning_rate' = -1 is not allowed"):
        config.learning_rate = -1
    assert config.learning_rate == 5e-4
    with pytest.raises(InputError, match="hparam 'num_train_steps'"):
        PretrainingConfig(num_train_steps=0)


def test_negative_learning_rate_on_the_cli_fails_before_any_model(
        shared_data_dir, tmp_path, capsys):  # noqa: F811 (fixture)
    data_dir = copy_data_dir(shared_data_dir, tmp_path / "data")
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in data_dir.rglob("*") if p.is_file()}
    code = cli.main(["pretrain", "--data-dir", str(data_dir), "--model-name", "neg",
                     "--hparams", hparams(learning_rate=-1, num_train_steps=2)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines() == [
        "keras-electra pretrain: error: hparam 'learning_rate' = -1.0 is not allowed: "
        "it must be a number > 0 (default 0.0005)."]
    assert not (data_dir / "models").exists()  # no models/neg/, no checkpoint
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in data_dir.rglob("*") if p.is_file()} == before


def test_bad_hparams_text_and_missing_file():
    with pytest.raises(InputError, match="not valid JSON"):
        PretrainingConfig.from_hparams("{learning_rate: }")
    with pytest.raises(InputError, match="does not exist"):
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
