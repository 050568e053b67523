"""Hugging Face export/import: logits parity with real `transformers` (PyTorch CPU).

Also the helpers the other interop tests import (tiny models, vocab, logits).
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from keras_electra.config import PretrainingConfig
from keras_electra.convert import huggingface as hf
from keras_electra.pretrainer import ElectraPretrainer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIAL_IDS = {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}
TOL = 1e-4


# ------------------------------------------------------------------ helpers
def write_vocab(path, size=120):
    tokens = SPECIALS + [f"w{i}" for i in range(size - len(SPECIALS))]
    Path(path).write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return str(path)


def tiny_model(vocab_file, vocab_size=120, embedding_size=16, hidden_size=32,
               do_lower_case=True, randomize=True, **hparams):
    """E != H, generator 1/4 of the discriminator; every weight random (LN and biases too)."""
    config = PretrainingConfig.create(
        vocab_size=vocab_size, embedding_size=embedding_size, max_seq_length=32,
        model_hparam_overrides={"hidden_size": hidden_size, "num_hidden_layers": 2},
        vocab_file=str(vocab_file), do_lower_case=do_lower_case, **hparams)
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=SPECIAL_IDS)
    model.pretraining_config = config
    model.vocab_file = str(vocab_file)
    if randomize:
        randomize_weights(model)
    return model


def randomize_weights(model, seed=0):
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.dtype == "float32":
            base = 1.0 if v.path.endswith("gamma") else 0.0
            v.assign((base + rng.normal(0, 0.1, v.shape)).astype("float32"))


def random_batch(vocab_size, batch=3, length=20, seed=0):
    """Ids with padding (rows 1, 2 padded) and two segments in row 0."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, (batch, length)).astype("int32")
    mask = np.ones_like(ids)
    mask[1, length // 2:] = 0
    mask[2:, 4:] = 0
    ids[mask == 0] = 0
    ids[:, 0] = 2
    segments = np.zeros_like(ids)
    segments[0, length // 2:] = 1
    return ids, mask, segments


def our_logits(model, ids, mask, segments):
    """(discriminator [B, L], generator [B, L, V]) logits of our model."""
    disc = model({"input_ids": ids, "input_mask": mask, "segment_ids": segments}).numpy()
    hidden = model.generator(model.generator_embeddings(ids, segments), mask)
    positions = np.tile(np.arange(ids.shape[1]), (ids.shape[0], 1))
    gen = model.generator_predictions(
        tf.gather(hidden, positions, batch_dims=1),
        model.generator_embeddings.embedding_table).numpy()
    return disc, gen


def torch_logits(module, ids, mask, segments):
    module.eval()
    with torch.no_grad():
        return module(input_ids=torch.tensor(ids, dtype=torch.long),
                      attention_mask=torch.tensor(mask, dtype=torch.long),
                      token_type_ids=torch.tensor(segments, dtype=torch.long)).logits.numpy()


def max_diff(a, b, mask):
    """Max |a - b| over real (non-padding) tokens."""
    m = mask.astype(bool)
    return float(np.abs(a[m] - b[m]).max())


def torch_pair(vocab_size=120, embedding_size=16, hidden=32, gen_hidden=8, layers=2,
               tied_embeddings=True, gen_heads=1, seed=0):
    """Random transformers discriminator + generator sharing embeddings (as google's)."""
    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, embedding_size=embedding_size,
                  num_hidden_layers=layers, max_position_embeddings=64)
    disc = transformers.ElectraForPreTraining(transformers.ElectraConfig(
        hidden_size=hidden, num_attention_heads=max(1, hidden // 16),
        intermediate_size=4 * hidden, **common))
    gen = transformers.ElectraForMaskedLM(transformers.ElectraConfig(
        hidden_size=gen_hidden, num_attention_heads=gen_heads, intermediate_size=4 * gen_hidden,
        **common))
    with torch.no_grad():
        for module in (disc, gen):
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.1)
        if tied_embeddings:
            gen.electra.embeddings.load_state_dict(disc.electra.embeddings.state_dict())
    return disc, gen


def corpora_dir():
    return Path(__file__).resolve().parents[1].parent / "shared" / "corpora"


# -------------------------------------------------------------------- tests
def test_export_loads_in_transformers_with_logit_parity(tmp_path):
    """E != H and a 1/4 generator: both towers match transformers within 1e-4."""
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"))
    out = hf.export_huggingface(model, str(tmp_path / "export"))

    disc, info = transformers.ElectraForPreTraining.from_pretrained(
        out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    gen, info = transformers.ElectraForMaskedLM.from_pretrained(
        out, subfolder="generator", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]

    ids, mask, segments = random_batch(120)
    ours_disc, ours_gen = our_logits(model, ids, mask, segments)
    assert max_diff(ours_disc, torch_logits(disc, ids, mask, segments), mask) < TOL
    assert max_diff(ours_gen, torch_logits(gen, ids, mask, segments), mask) < TOL

    gen_config = json.loads((tmp_path / "export/generator/config.json").read_text())
    assert gen_config["vocab_size"] == 120 and gen_config["embedding_size"] == 16
    assert (gen_config["hidden_size"], gen_config["intermediate_size"]) == (8, 32)
    assert gen_config["hidden_act"] == "gelu" and gen_config["layer_norm_eps"] == 1e-12
    for folder in (tmp_path / "export", tmp_path / "export/generator"):
        names = set(os.listdir(folder))
        assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
                "tokenizer_config.json", "special_tokens_map.json"} <= names
    assert not any(".tmp-" in n for n in os.listdir(tmp_path))  # atomic publish


def test_small_preset_logit_parity(tmp_path):
    """ELECTRA-Small sizes (E 128, H 256, generator 64), the full 30522 vocab."""
    config = PretrainingConfig.create(model_size="small", do_lower_case=True,
                                      vocab_file=write_vocab(tmp_path / "vocab.txt", 30522))
    model = ElectraPretrainer.from_pretraining_config(config, special_token_ids=SPECIAL_IDS)
    model.pretraining_config = config
    out = hf.export_huggingface(model, str(tmp_path / "small"))
    ids, mask, segments = random_batch(30522, batch=2, length=24)
    ours_disc, ours_gen = our_logits(model, ids, mask, segments)
    disc = transformers.ElectraForPreTraining.from_pretrained(out)
    assert max_diff(ours_disc, torch_logits(disc, ids, mask, segments), mask) < TOL
    del disc
    gen = transformers.ElectraForMaskedLM.from_pretrained(out, subfolder="generator")
    assert gen.config.hidden_size == 64 and gen.config.embedding_size == 128
    assert max_diff(ours_gen, torch_logits(gen, ids, mask, segments), mask) < TOL


def corpus_lines(subdirs=None):
    """Lines of the shared corpora (invalid UTF-8 -> U+FFFD, which both tokenizers drop)."""
    lines = []
    for path in sorted(corpora_dir().rglob("*.txt")):
        if subdirs is None or path.parent.name in subdirs:
            lines += path.read_bytes().decode("utf-8", errors="replace").splitlines()
    return lines


@pytest.fixture(scope="module")
def corpus_vocab(tmp_path_factory):
    """A cased WordPiece vocab learned from the corpora (3000 pieces)."""
    from tokenizers import BertWordPieceTokenizer

    if not corpora_dir().is_dir():
        pytest.skip(f"no corpora at {corpora_dir()}")
    learner = BertWordPieceTokenizer(lowercase=False, strip_accents=False)
    learner.train_from_iterator(corpus_lines(), vocab_size=3000, special_tokens=SPECIALS,
                                show_progress=False)
    tokens = [t for t, _ in sorted(learner.get_vocab().items(), key=lambda kv: kv[1])]
    tokens += [t for t in ("a", "##a") if t not in tokens]  # for the word-limit check
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path, tokens


# Cased runs on every corpus line; uncased (lower-case + strip accents) on the
# Spanish corpora, where accents are, to keep the suite fast.
@pytest.mark.parametrize("do_lower_case,corpora", [
    (False, None), (True, ("es_fortunes", "bad_inputs"))], ids=["cased", "uncased"])
def test_exported_fast_tokenizer_gives_our_ids_on_corpora(tmp_path, corpus_vocab,
                                                           do_lower_case, corpora):
    from keras_electra.data.tokenization import FullTokenizer

    vocab_path, tokens = corpus_vocab
    model = tiny_model(vocab_path, vocab_size=len(tokens), do_lower_case=do_lower_case,
                       randomize=False)
    out = hf.export_huggingface(model, str(tmp_path / "export"))
    tokenizer_config = json.loads((tmp_path / "export/tokenizer_config.json").read_text())
    assert tokenizer_config["do_lower_case"] is do_lower_case
    assert tokenizer_config["strip_accents"] is do_lower_case

    theirs = transformers.AutoTokenizer.from_pretrained(out)
    ours = FullTokenizer({t: i for i, t in enumerate(tokens)}, do_lower_case)
    lines = corpus_lines(corpora)
    lines.append("Ünïcödé ÀÉÎ 中文 straße\x00\u200b ﬁ")  # accents, CJK, controls
    encoded = theirs(lines, add_special_tokens=False)["input_ids"]
    mismatches = [(line, got) for line, got in zip(lines, encoded)
                  if got != ours.tokenize_to_ids(line)]
    assert not mismatches, f"{len(mismatches)} of {len(lines)} lines differ, e.g. {mismatches[0]}"
    assert theirs("w")["input_ids"][0] == tokens.index("[CLS]")
    # tokenizer.json keeps the official 200-character word limit (tokenizers: 100);
    # transformers 5 rebuilds WordPiece from vocab.txt with 100, see huggingface.py.
    from tokenizers import Tokenizer
    fast = Tokenizer.from_file(os.path.join(out, "tokenizer.json"))
    long_word = "a" * 150
    assert fast.encode(long_word, add_special_tokens=False).ids == ours.tokenize_to_ids(long_word)


def test_export_refuses_to_guess_casing(tmp_path):
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), randomize=False)
    model.pretraining_config = None
    with pytest.raises(ValueError, match="do_lower_case"):
        hf.export_huggingface(model, str(tmp_path / "x"), vocab_file=model.vocab_file)
    hf.export_huggingface(model, str(tmp_path / "x"), do_lower_case=False)
    config = json.loads((tmp_path / "x/tokenizer_config.json").read_text())
    assert config["do_lower_case"] is False and config["strip_accents"] is False


@pytest.mark.parametrize("tied", [True, False], ids=["tied-embeddings", "untied-embeddings"])
def test_import_transformers_checkpoints(tmp_path, tied):
    """google/electra-* layout (two folders) -> ElectraPretrainer with the same logits."""
    disc, gen = torch_pair(tied_embeddings=tied)
    for module, name in ((disc, "disc"), (gen, "gen")):
        module.save_pretrained(tmp_path / name)
        write_vocab(tmp_path / name / "vocab.txt")
        (tmp_path / name / "tokenizer_config.json").write_text(json.dumps(
            {"tokenizer_class": "ElectraTokenizer", "do_lower_case": False}))

    model = hf.import_huggingface(str(tmp_path / "disc"), str(tmp_path / "gen"), seed=3)
    assert model.untied_generator_embeddings is (not tied)
    assert model.pretraining_config.do_lower_case is False
    assert model.pretraining_config.generator_hidden_size == 0.25
    ids, mask, segments = random_batch(120)
    ours_disc, ours_gen = our_logits(model, ids, mask, segments)
    assert max_diff(ours_disc, torch_logits(disc, ids, mask, segments), mask) < TOL
    assert max_diff(ours_gen, torch_logits(gen, ids, mask, segments), mask) < TOL
    # ...and it continues pretraining: the whole objective runs.
    outputs = model.compute_pretraining_outputs(
        {"input_ids": ids, "input_mask": mask, "segment_ids": segments}, 0, training=True)
    assert np.isfinite(outputs["loss"].numpy())


def test_import_without_casing_is_refused(tmp_path):
    disc, gen = torch_pair()
    disc.save_pretrained(tmp_path / "disc")
    gen.save_pretrained(tmp_path / "disc" / "generator")
    write_vocab(tmp_path / "disc" / "vocab.txt")
    with pytest.raises(ValueError, match="do_lower_case"):
        hf.import_huggingface(str(tmp_path / "disc"))
    model = hf.import_huggingface(str(tmp_path / "disc"), do_lower_case=True)
    assert model.pretraining_config.do_lower_case is True


class _OpensAFile:
    """Unpickling this creates a file: what a hostile pytorch_model.bin could do."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _as_pytorch_bin(folder):
    """Swap a folder's model.safetensors for pytorch_model.bin (torch.save of its tensors)."""
    from safetensors.torch import load_file

    torch.save(load_file(str(folder / "model.safetensors")), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def test_pytorch_bin_loads_safely_and_a_hostile_one_is_refused(tmp_path, capsys):
    from keras_electra import cli

    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)
    export = Path(hf.export_huggingface(model, str(tmp_path / "export")))
    for folder in (export, export / "generator"):
        _as_pytorch_bin(folder)
    again = hf.import_huggingface(str(export))  # plain tensors: loaded
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)

    sentinel = tmp_path / "pwned"
    torch.save({"extra": _OpensAFile(str(sentinel))}, export / "pytorch_model.bin")
    hostile = (export / "pytorch_model.bin").read_bytes()
    (export / "generator" / "pytorch_model.bin").write_bytes(b"\x80\x02 not a checkpoint")
    for bad in (export / "pytorch_model.bin", export / "generator" / "pytorch_model.bin"):
        with pytest.raises(hf.InputError, match="safetensors"):
            hf.load_state_dict(str(bad.parent))
    assert cli.main(["export", str(export), "--from", "huggingface",
                     "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert str(export / "pytorch_model.bin") in err and "model.safetensors" in err
    assert "weights_only=False" not in err and "refused" in err
    assert not sentinel.exists()  # its code never ran (weights_only=True)
    assert (export / "pytorch_model.bin").read_bytes() == hostile  # the file is untouched
    assert not (tmp_path / "out").exists()


def test_export_import_round_trip_is_exact(tmp_path):
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)
    hf.export_huggingface(model, str(tmp_path / "export"))
    again = hf.import_huggingface(str(tmp_path / "export"))
    ids, mask, segments = random_batch(120)
    for a, b in zip(our_logits(model, ids, mask, segments),
                    our_logits(again, ids, mask, segments)):
        np.testing.assert_array_equal(a, b)
    assert again.pretraining_config.do_lower_case is False


def test_export_cli(tmp_path, capsys):
    from keras_electra import cli

    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)
    model.save_to_preset(str(tmp_path / "preset"))
    assert cli.main(["export", str(tmp_path / "preset"), "--format", "huggingface",
                     "--output", str(tmp_path / "hf")]) == 0
    disc = transformers.ElectraForPreTraining.from_pretrained(str(tmp_path / "hf"))
    ids, mask, segments = random_batch(120)
    assert max_diff(our_logits(model, ids, mask, segments)[0],
                    torch_logits(disc, ids, mask, segments), mask) < TOL
    assert cli.main(["export", str(tmp_path / "hf"), "--from", "huggingface", "--format",
                     "keras-hub", "--output", str(tmp_path / "kh")]) == 0
    assert (tmp_path / "kh" / "model.weights.h5").exists()
