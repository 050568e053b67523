"""Fine-tuning: the classifier learns, the official layer-wise rates, transformers parity,
presets, the CLI, and every bad input named."""

import json
import re

import keras
import numpy as np
import pytest

from keras_electra import cli
from keras_electra.classifier import ElectraClassifier, encode_examples, truncate_pair
from keras_electra.convert.huggingface_classifier import export_classifier_huggingface
from keras_electra.finetune import fine_tune, macro_f1, read_examples
from keras_electra.optimization import layerwise_lr_multipliers
from keras_electra.pretrainer import ElectraPretrainer
from tiny_models import SPECIAL, tiny_config

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(40)]
LAYERS = 2
LENGTH = 4  # words per text


# ------------------------------------------------------------------ helpers
@pytest.fixture(scope="module")
def vocab_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(t + "\n" for t in SPECIALS + WORDS), encoding="utf-8")
    return str(path)


def tiny_pretrainer(vocab_file, randomize=False, dropout=0.1, **hparams):
    """2 layers, E 16 != H 32, uncased, with the vocab above."""
    config = tiny_config(vocab_size=len(SPECIALS) + len(WORDS), vocab_file=vocab_file,
                         model_hparam_overrides={
                             "hidden_size": 32, "num_hidden_layers": LAYERS,
                             "hidden_dropout_prob": dropout,
                             "attention_probs_dropout_prob": dropout}, **hparams)
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=SPECIAL)
    if randomize:
        _randomize(model)
    return model


def _randomize(model, seed=0):
    """Every weight random (LayerNorm and biases too), so parity checks all of them."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.dtype == "float32" and v.trainable:
            base = 1.0 if v.path.endswith("gamma") else 0.0
            v.assign((base + rng.normal(0, 0.1, v.shape)).astype("float32"))


def contains_w7(n, seed):
    """(text, label): "yes" when the token w7 is in the text, else "no" (half each)."""
    rs = np.random.RandomState(seed)
    rows = []
    for i in range(n):
        words = list(rs.choice([w for w in WORDS if w != "w7"], LENGTH))
        if i % 2 == 0:
            words[rs.randint(LENGTH)] = "w7"
        rows.append((" ".join(words), "yes" if i % 2 == 0 else "no"))
    return rows


def write_tsv(path, rows, header=("text", "label")):
    lines = (["\t".join(header)] if header else []) + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def features(model, texts, texts_b=None, length=24):
    return model.encode(texts, texts_b, length)


def run_cli(argv, capsys):
    code = cli.main(["finetune", *[str(a) for a in argv]])
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------ learning
def test_classifier_learns_a_token_presence_task(vocab_file):
    """label = whether w7 occurs: from random weights to ~100% in 6 epochs (4 random
    initialisations all got there by epoch 4). Fails if gradients do not reach the head
    or the encoder (the backbone must move)."""
    keras.utils.set_random_seed(101)
    pretrainer = tiny_pretrainer(vocab_file)
    before = pretrainer.discriminator.blocks[0].weights[0].numpy().copy()
    result = fine_tune(pretrainer, contains_w7(128, 0), contains_w7(64, 1), epochs=6,
                       batch_size=8, max_seq_length=12, learning_rate=1e-3, seed=0)
    assert result.epochs[0]["accuracy"] < 0.75  # not solved before training
    assert result.final["accuracy"] >= 0.95 and result.final["macro_f1"] >= 0.95
    assert result.epochs[-1]["train_loss"] < result.epochs[0]["train_loss"] - 0.2
    assert result.labels == ["no", "yes"]  # sorted
    # The classifier trained a copy: the pretrainer is untouched, the copy moved.
    np.testing.assert_array_equal(pretrainer.discriminator.blocks[0].weights[0].numpy(), before)
    moved = result.classifier.encoder.blocks[0].weights[0].numpy()
    assert np.abs(moved - before).max() > 1e-3
    assert result.classifier.predict_texts(["w1 w7 w3", "w1 w2 w3"], max_seq_length=12)[0][0] \
        == "yes"


@pytest.fixture(scope="module")
def small_runs(vocab_file):
    """Three short runs from one pretrainer: seeds 3, 3 and 4 (eager steps: the same
    code, without the graph tracing that costs more than these 4 steps)."""
    pretrainer = tiny_pretrainer(vocab_file)
    return [fine_tune(pretrainer, contains_w7(16, 0), contains_w7(8, 1), epochs=1,
                      batch_size=4, max_seq_length=12, learning_rate=2e-4,
                      layerwise_lr_decay=0.7, seed=seed, run_eagerly=True)
            for seed in (3, 3, 4)]


def test_same_seed_same_result_other_seed_differs(small_runs):
    x = small_runs[0].classifier.encode([t for t, _ in contains_w7(8, 1)], max_seq_length=12)
    logits = [r.classifier.predict(x, verbose=0) for r in small_runs]
    np.testing.assert_array_equal(logits[0], logits[1])
    assert small_runs[0].epochs == small_runs[1].epochs
    assert np.abs(logits[0] - logits[2]).max() > 1e-4


# ------------------------------------------------------------------ the official rates
def official_depth(path, num_layers):
    """`_get_layer_lrs`' keys, read off our variable paths independently."""
    if "/embeddings/" in path or "/embeddings_project/" in path:
        return 0
    layer = re.search(r"/layer_(\d+)/", path)
    if layer:
        return int(layer.group(1)) + 1
    assert "/classifier/" in path, path  # the task head ("task_specific/")
    return num_layers + 2


def test_layerwise_rates_equal_the_official_formula(small_runs):
    model = small_runs[0].classifier
    optimizer = model.optimizer
    assert {v.path for v in model.trainable_variables} == set(model.variable_depths())
    seen = set()
    for v in model.trainable_variables:
        depth = official_depth(v.path, LAYERS)
        seen.add(depth)
        expected = 2e-4 * 0.7 ** (LAYERS + 2 - depth)
        assert 2e-4 * optimizer.learning_rate_multiplier(v) == pytest.approx(expected), v.path
    assert seen == {0, 1, 2, LAYERS + 2}
    # Official recipe: Adam eps 1e-6, decay 0.01 (not LayerNorm/bias), clip 1.0,
    # 10% warm-up multiplied with a linear decay to 0 at the last step.
    assert (optimizer.epsilon, optimizer.weight_decay_rate, optimizer.clip_norm) == \
        (1e-6, 0.01, 1.0)
    schedule = optimizer._learning_rate
    assert schedule.num_train_steps == 4 and schedule.num_warmup_steps == pytest.approx(0.4)
    assert layerwise_lr_multipliers({"a": 0, "b": 3}, 1, 0.5) == {"a": 0.125, "b": 1.0}


# ------------------------------------------------------------------ transformers parity
def test_huggingface_export_logit_parity_single_and_pair(vocab_file, tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = ElectraClassifier.from_pretrainer(tiny_pretrainer(vocab_file), ["a", "b", "c"])
    _randomize(model, seed=1)
    out = export_classifier_huggingface(model, str(tmp_path / "hf"))
    theirs, info = transformers.ElectraForSequenceClassification.from_pretrained(
        out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert theirs.config.id2label == {0: "a", 1: "b", 2: "c"}
    theirs.eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(out)
    texts = ["W1 w2 w3", "w7", "w9 w10 w11 w12 w13 w14"]
    pairs = ["w4 w5", "w6 w8 w9", "w1"]
    for texts_b in (None, pairs):
        ours = features(model, texts, texts_b)
        encoded = tokenizer(texts, texts_b, padding="max_length", max_length=24)
        np.testing.assert_array_equal(ours["input_ids"], encoded["input_ids"])
        np.testing.assert_array_equal(ours["segment_ids"], encoded["token_type_ids"])
        np.testing.assert_array_equal(ours["input_mask"], encoded["attention_mask"])
        with torch.no_grad():
            reference = theirs(
                input_ids=torch.tensor(ours["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(ours["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(ours["segment_ids"], dtype=torch.long)).logits
        np.testing.assert_allclose(model(ours).numpy(), reference.numpy(), atol=1e-5)
    config = json.loads((tmp_path / "hf/config.json").read_text())
    assert config["label2id"] == {"a": 0, "b": 1, "c": 2}
    assert config["architectures"] == ["ElectraForSequenceClassification"]
    assert json.loads((tmp_path / "hf/tokenizer_config.json").read_text())["do_lower_case"]


def test_truncation_is_berts_longest_first():
    a, b = list(range(10)), list(range(100, 110))
    truncate_pair(a, b, 15)
    assert (len(a), len(b)) == (8, 7)  # ties cut b first, as the official loop
    a, b = list(range(3)), list(range(100, 120))
    truncate_pair(a, b, 10)
    assert (a, b) == ([0, 1, 2], list(range(100, 107)))

    class Ids:
        def tokenize_lines(self, lines):
            return [[int(t) for t in line.split()] for line in lines]

    special = {"cls": 2, "sep": 3, "pad": 0}
    out = encode_examples(Ids(), ["10 11 12 13"], ["20 21"], 7, special)
    assert out["input_ids"].tolist() == [[2, 10, 11, 3, 20, 21, 3]]
    assert out["segment_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1]]
    out = encode_examples(Ids(), ["10 11 12 13 14 15"], None, 5, special)
    assert out["input_ids"].tolist() == [[2, 10, 11, 12, 3]]


# ------------------------------------------------------------------ presets
def test_preset_round_trip_gives_the_same_logits(vocab_file, tmp_path):
    model = ElectraClassifier.from_pretrainer(tiny_pretrainer(vocab_file), ["neg", "pos"])
    _randomize(model)
    restored_config = ElectraClassifier.from_config(model.get_config()).get_config()
    assert restored_config == model.get_config()
    model.save_to_preset(str(tmp_path / "preset"))
    loaded = ElectraClassifier.from_preset(str(tmp_path / "preset"))
    x = features(model, ["w1 w2", "w3 w7 w9"], ["w4", "w5 w6"])
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
    assert loaded.labels == ["neg", "pos"] and loaded.do_lower_case is True
    assert (tmp_path / "preset/vocab.txt").read_text() == open(vocab_file).read()
    assert loaded.predict_texts(["w1 w2"])[0][0] in ("neg", "pos")


def test_classifier_starts_from_the_towers_each_objective_fine_tunes(vocab_file, tmp_path):
    """GDES: the merged tables (generator + delta); BERT objective: the masked-LM
    tower; a transformers folder: its discriminator. Same logits as the source."""
    from keras_electra.convert.huggingface import export_huggingface
    from keras_electra.finetune import load_model

    x = {"input_ids": np.array([[2, 9, 10, 3, 12, 3]], "int32"),
         "input_mask": np.ones((1, 6), "int32"), "segment_ids": np.array([[0] * 4 + [1] * 2])}

    def hidden(embeddings, encoder):
        return encoder(embeddings(x["input_ids"], x["segment_ids"]), x["input_mask"]).numpy()

    gdes = tiny_pretrainer(vocab_file, embedding_sharing="gdes")
    for delta in gdes.embeddings.deltas.values():
        delta.assign(np.full(delta.shape, 0.05, "float32"))
    model = ElectraClassifier.from_pretrainer(gdes, ["a", "b"])
    merged = gdes.discriminator_embedding_weights()
    np.testing.assert_allclose(model.embeddings.word_embeddings.embeddings.numpy(),
                               np.asarray(merged["word_embeddings"]), atol=1e-7)
    reference = gdes.discriminator(gdes.embed_for_discriminator(x["input_ids"], x["segment_ids"]),
                                   x["input_mask"]).numpy()
    np.testing.assert_allclose(hidden(model.embeddings, model.encoder), reference, atol=1e-5)

    bert = tiny_pretrainer(vocab_file, electra_objective=False)
    model = ElectraClassifier.from_pretrainer(bert, ["a", "b"])
    assert model.hidden_size == bert.generator.hidden_size == 32
    np.testing.assert_allclose(hidden(model.embeddings, model.encoder),
                               hidden(bert.generator_embeddings, bert.generator), atol=1e-5)

    electra = tiny_pretrainer(vocab_file, randomize=True)
    export_huggingface(electra, str(tmp_path / "hf"))
    loaded = load_model(str(tmp_path / "hf"))
    model = ElectraClassifier.from_pretrainer(loaded, ["a", "b"])
    np.testing.assert_allclose(hidden(model.embeddings, model.encoder),
                               hidden(electra.embeddings, electra.discriminator), atol=1e-5)
    assert model.do_lower_case is True and model.vocab_file.endswith("vocab.txt")


# ------------------------------------------------------------------ reading files
def test_reading_tsv_csv_headers_and_pairs(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text('idx\tsentence\tlabel\n0\t"quoted" text\tpos\n1\tother\tneg\n')
    assert [(e.text, e.label) for e in read_examples(str(tsv))] == [
        ('"quoted" text', "pos"), ("other", "neg")]
    csv_file = tmp_path / "b.csv"
    csv_file.write_text('label,text_b,text\nx,"b, with comma",a\n')
    (example,) = read_examples(str(csv_file))
    assert (example.text, example.text_b, example.label) == ("a", "b, with comma", "x")
    sniffed = tmp_path / "c.txt"  # no extension: a tab on the first line means TSV
    sniffed.write_text("one\ttwo\tlbl\nthree\tfour\tlbl2\n")  # no header: 3 columns
    examples = read_examples(str(sniffed))
    assert [(e.text, e.text_b, e.label) for e in examples] == [
        ("one", "two", "lbl"), ("three", "four", "lbl2")]
    assert examples[1].where == f"{sniffed} line 2"


def test_macro_f1_matches_the_definition():
    # label 0: tp 1 fp 1 fn 1 -> 0.5; label 1: tp 1 fp 0 fn 1 -> 2/3; label 2: tp 0 fp 1 -> 0
    assert macro_f1([0, 0, 1, 1], [0, 2, 1, 0]) == pytest.approx((0.5 + 2 / 3 + 0) / 3)
    assert macro_f1([1, 1], [1, 1]) == 1.0


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def preset_dir(vocab_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "preset"
    tiny_pretrainer(vocab_file).save_to_preset(str(path))
    return str(path)


def test_cli_end_to_end(preset_dir, tmp_path, capsys):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    train = write_tsv(tmp_path / "train.tsv", contains_w7(24, 0))
    dev = write_tsv(tmp_path / "dev.tsv", contains_w7(8, 1))
    out = tmp_path / "out"
    code, stdout, err = run_cli(["--model", preset_dir, "--train", train, "--eval", dev,
                                 "--output", out, "--epochs", 2, "--batch-size", 8,
                                 "--max-seq-length", 12, "--seed", 1], capsys)
    assert code == 0, err
    assert "epoch 2/2" in stdout and "final: accuracy" in stdout
    results = json.loads((out / "results.json").read_text())
    assert [e["epoch"] for e in results["epochs"]] == [1, 2]
    assert set(results["final"]) >= {"accuracy", "macro_f1", "eval_loss"}
    assert results["labels"] == ["no", "yes"] and results["hparams"]["seed"] == 1
    assert results["hparams"]["learning_rate"] == 1e-4  # the official default
    loaded = ElectraClassifier.from_preset(str(out / "preset"))
    hf = transformers.ElectraForSequenceClassification.from_pretrained(str(out / "huggingface"))
    hf.eval()
    x = features(loaded, ["w1 w7", "w2 w3"], length=12)
    with torch.no_grad():
        reference = hf(input_ids=torch.tensor(x["input_ids"], dtype=torch.long),
                       attention_mask=torch.tensor(x["input_mask"], dtype=torch.long),
                       token_type_ids=torch.tensor(x["segment_ids"], dtype=torch.long)).logits
    np.testing.assert_allclose(loaded(x).numpy(), reference.numpy(), atol=1e-5)


BAD_INPUTS = {
    # name: (train text, dev text, extra args, words the one-line message must contain)
    "missing file": (None, "text\tlabel\na\tx\n", [], ["train.tsv", "does not exist"]),
    "empty file": ("", "text\tlabel\na\tx\n", [], ["train.tsv", "is empty"]),
    "header only": ("text\tlabel\n", "text\tlabel\na\tx\n", [], ["train.tsv", "no examples"]),
    "wrong columns": ("text\tlabel\na\tx\nb\ty\tz\n", "text\tlabel\na\tx\n", [],
                      ["train.tsv line 3", "3 columns, expected 2"]),
    "unknown header": ("text\tlabel\tscore\na\tx\t1\n", "text\tlabel\na\tx\n", [],
                       ["train.tsv line 1, column 3", "'score'"]),
    "empty label": ("text\tlabel\na\tx\nb\t \n", "text\tlabel\na\tx\n", [],
                    ["train.tsv line 3, column 2 (label)", "empty label"]),
    "unseen dev label": ("text\tlabel\na\tx\nb\ty\n", "text\tlabel\na\tx\nb\tmaybe\n", [],
                         ["dev.tsv line 3", "'maybe'", "train.tsv"]),
    "one label": ("text\tlabel\na\tx\nb\tx\n", "text\tlabel\na\tx\n", [],
                  ["train.tsv", "at least 2 labels"]),
    "pair mismatch": ("text\ttext_b\tlabel\na\tb\tx\nb\tc\ty\n", "text\tlabel\na\tx\n", [],
                      ["train.tsv has a text_b column", "dev.tsv"]),
    "not utf-8": (b"text\tlabel\n\xff\xfe\tx\n", "text\tlabel\na\tx\n", [],
                  ["train.tsv", "not UTF-8"]),
    "zero epochs": ("text\tlabel\na\tx\nb\ty\n", "text\tlabel\na\tx\n", ["--epochs", 0],
                    ["epochs = 0", "--epochs"]),
    "nan rate": ("text\tlabel\na\tx\nb\ty\n", "text\tlabel\na\tx\n",
                 ["--learning-rate", "nan"], ["learning_rate = nan", "--learning-rate"]),
    "decay above 1": ("text\tlabel\na\tx\nb\ty\n", "text\tlabel\na\tx\n",
                      ["--layerwise-lr-decay", 1.5], ["layerwise_lr_decay = 1.5"]),
    "too long": ("text\tlabel\na\tx\nb\ty\n", "text\tlabel\na\tx\n",
                 ["--max-seq-length", 1000], ["max_seq_length = 1000",
                                              "max_position_embeddings (512)"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_inputs_are_named_in_one_line(case, preset_dir, tmp_path, capsys):
    train_text, dev_text, extra, words = BAD_INPUTS[case]
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv"
    for path, text in ((train, train_text), (dev, dev_text)):
        if text is not None:
            path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    code, _, err = run_cli(["--model", preset_dir, "--train", train, "--eval", dev,
                            "--output", tmp_path / "out", "--epochs", 1, *extra], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-electra finetune: error: "), err
    assert "Traceback" not in err
    for word in words:
        assert word in lines[0], (word, lines[0])
    # Nothing lost, nothing half-written.
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_output_holding_user_files_is_refused_before_training(preset_dir, tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", contains_w7(8, 0))
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    code, stdout, err = run_cli(["--model", preset_dir, "--train", train, "--eval", train,
                                 "--output", out], capsys)
    assert code == 2 and "notes.txt" in err and "--overwrite" in err
    assert "epoch" not in stdout  # refused up front
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert (out / "notes.txt").read_text() == "mine"


def test_a_built_in_preset_needs_a_vocabulary(tmp_path, capsys):
    train = write_tsv(tmp_path / "train.tsv", contains_w7(8, 0))
    code, _, err = run_cli(["--model", "electra_small", "--train", train, "--eval", train,
                            "--output", tmp_path / "out"], capsys)
    assert code == 2 and "electra_small" in err and "--vocab-file" in err
    assert not (tmp_path / "out").exists()
