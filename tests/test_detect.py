"""`keras-electra detect`: per-token replaced probabilities, tokenized as in training."""

from pathlib import Path

import numpy as np
import pytest

from keras_electra import cli
from keras_electra.convert.huggingface import export_huggingface
from keras_electra.detect import detect, format_table

from test_huggingface import SPECIALS, tiny_model

WORDS = ["Los", "los", "pájaros", "pajaros", "están", "estan", "hablando", "."]


def _model(tmp_path, do_lower_case):
    tokens = SPECIALS + WORDS + [f"w{i}" for i in range(120 - len(SPECIALS) - len(WORDS))]
    vocab = Path(tmp_path / "vocab.txt")
    vocab.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return tiny_model(vocab, do_lower_case=do_lower_case)


@pytest.mark.parametrize("do_lower_case,expected", [
    (False, ["Los", "pájaros", "están", "hablando"]),
    (True, ["los", "pajaros", "estan", "hablando"]),  # uncased: lower + strip accents
])
def test_detect_uses_the_models_casing_and_logits(tmp_path, do_lower_case, expected):
    model = _model(tmp_path, do_lower_case)
    rows = detect(model, "Los pájaros están hablando")
    assert [t for t, _ in rows] == expected
    ids = [2] + [model_id for model_id in (
        {t: i for i, t in enumerate(SPECIALS + WORDS)}[t] for t in expected)] + [3]
    logits = model({"input_ids": np.array([ids]), "input_mask": np.ones((1, len(ids))),
                    "segment_ids": np.zeros((1, len(ids)), "int32")}).numpy()[0, 1:-1]
    np.testing.assert_allclose([p for _, p in rows], 1 / (1 + np.exp(-logits)), rtol=1e-5)

    table = format_table([("a", 0.9), ("b", 0.1)])
    assert table.splitlines()[2].split() == ["a", "0.900", "<-", "replaced?"]
    assert table.splitlines()[3].split() == ["b", "0.100"]


def test_detect_cli_on_preset_and_transformers_export(tmp_path, capsys):
    model = _model(tmp_path, do_lower_case=False)
    model.save_to_preset(str(tmp_path / "preset"))
    export_huggingface(model, str(tmp_path / "hf"))
    outputs = []
    for folder in ("preset", "hf"):
        assert cli.main(["detect", "--model", str(tmp_path / folder),
                         "Los pájaros están hablando", "--threshold", "0.0"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]  # same model, same table, whichever format
    assert "pájaros" in outputs[0] and "p(replaced)" in outputs[0]
    assert outputs[0].count("<- replaced?") == 4


def test_detect_on_a_training_folder_uses_its_final_model(tmp_path, capsys):
    """models/NAME is the folder users pass: it means its final/ (issue 17, item 6)."""
    model = _model(tmp_path, do_lower_case=False)
    run = tmp_path / "models" / "tiny"
    model.save_to_preset(str(run / "final"))
    model.pretraining_config.to_json(str(run / "config.json"))  # training's hparams file
    outputs = []
    for folder in (run, run / "final"):
        assert cli.main(["detect", "--model", str(folder), "Los pájaros",
                         "--threshold", "0.0"]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] and "pájaros" in outputs[0]
