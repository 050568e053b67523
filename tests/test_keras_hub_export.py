"""keras-hub export: stock `ElectraBackbone.from_preset` loads the discriminator."""

import os

import numpy as np
import pytest

from keras_electra.convert.keras_hub import export_keras_hub, to_backbone

from test_huggingface import random_batch, tiny_model, write_vocab

keras_hub = pytest.importorskip("keras_hub")


def _sequence_outputs(model, backbone, ids, mask, segments):
    ours = model.discriminator(model.embeddings(ids, segments), mask).numpy()
    theirs = backbone({"token_ids": ids, "segment_ids": segments,
                       "padding_mask": mask})["sequence_output"].numpy()
    return ours, theirs


def test_preset_loads_with_stock_keras_hub(tmp_path):
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)
    preset = export_keras_hub(model, str(tmp_path / "preset"))
    assert {"config.json", "model.weights.h5", "metadata.json", "tokenizer.json"} <= set(
        os.listdir(preset))

    backbone = keras_hub.models.ElectraBackbone.from_preset(preset)
    tokenizer = keras_hub.models.ElectraTokenizer.from_preset(preset)
    assert not tokenizer.lowercase
    assert backbone.get_layer("embeddings_projection").kernel.shape == (16, 32)

    ids, mask, segments = random_batch(120)
    ours, theirs = _sequence_outputs(model, backbone, ids, mask, segments)
    diff = float(np.abs(ours - theirs)[mask.astype(bool)].max())
    print(f"keras-hub tanh-GELU vs exact GELU, max |sequence_output diff| = {diff:.2e}")
    assert 0 < diff < 2e-2  # tanh approximation (ElectraBackbone hard-codes it)

    # Everything but the activation is identical: swap GELU for the exact one.
    for block in backbone.layers:
        if block.name.startswith("transformer_layer_"):
            block._feedforward_intermediate_dense.activation = model.discriminator.blocks[
                0]._feedforward_intermediate_dense.activation
    ours, theirs = _sequence_outputs(model, backbone, ids, mask, segments)
    assert float(np.abs(ours - theirs)[mask.astype(bool)].max()) < 1e-5


def test_to_backbone_refuses_unknown_casing(tmp_path):
    model = tiny_model(write_vocab(tmp_path / "vocab.txt"), randomize=False)
    model.pretraining_config = None
    with pytest.raises(ValueError, match="do_lower_case"):
        export_keras_hub(model, str(tmp_path / "p"), vocab_file=model.vocab_file)
    assert to_backbone(model).count_params() > 0
