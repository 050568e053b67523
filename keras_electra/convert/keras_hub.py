"""Export the discriminator as a keras-hub preset (`ElectraBackbone` + `ElectraTokenizer`).

    export_keras_hub(model, "disc_preset")
    backbone = keras_hub.models.ElectraBackbone.from_preset("disc_preset")
    tokenizer = keras_hub.models.ElectraTokenizer.from_preset("disc_preset")

The preset is written by keras-hub itself (`save_to_preset` of a stock
`ElectraBackbone` holding our weights), so any keras-hub version that reads
its own presets loads it, no keras-electra needed.

Differences keras-hub's classes impose, none fixable by a converter:
- GELU: `ElectraBackbone` hard-codes the tanh approximation; ELECTRA (official
  code, transformers, this package) uses the exact erf GELU. Measured max
  |sequence_output difference| over real tokens, same weights, float32, CPU:
  4.3e-4 for the tiny random-weight model of `tests/test_keras_hub_export.py`
  (which prints it and checks that swapping in exact GELU makes the outputs
  agree within 1e-5). Trained weights with larger pre-activations differ more;
  fine-tuning absorbs it. For exact features use the transformers export or
  `ElectraPretrainer` itself.
- `pooled_dense` (tanh dense on [CLS]) has no ELECTRA counterpart (the
  official model has no pooler): it keeps keras-hub's fresh initialisation.
  Only `pooled_output` depends on it.
- The tokenizer lower-cases with Unicode case folding (tf-text), the official
  one with `str.lower()`: they differ on rare characters such as "ß" -> "ss".

The embeddings are the discriminator's effective ones
(`ElectraPretrainer.discriminator_embedding_weights`): under
`embedding_sharing="gdes"`, generator table + delta, one ordinary table.
"""

import tempfile

from keras_electra.convert import publish_dir


def _table(backbone, model):
    """[(keras-hub variable, our variable or merged tensor)] of the discriminator body."""
    embeddings, encoder = model.discriminator_embedding_weights(), model.discriminator
    table = [
        (backbone.get_layer("token_embedding").embeddings, embeddings["word_embeddings"]),
        (backbone.get_layer("position_embedding").position_embeddings,
         embeddings["position_embeddings"]),
        (backbone.get_layer("segment_embedding").embeddings,
         embeddings["token_type_embeddings"]),
        (backbone.get_layer("embeddings_layer_norm").gamma, embeddings["LayerNorm/gamma"]),
        (backbone.get_layer("embeddings_layer_norm").beta, embeddings["LayerNorm/beta"]),
    ]
    if encoder.embeddings_project is not None:
        projection = backbone.get_layer("embeddings_projection")
        table += [(projection.kernel, encoder.embeddings_project.kernel),
                  (projection.bias, encoder.embeddings_project.bias)]
    for i, block in enumerate(encoder.blocks):
        # Same class (keras_hub TransformerEncoder) on both sides: same variable order.
        theirs = backbone.get_layer(f"transformer_layer_{i}").weights
        table += list(zip(theirs, block.weights, strict=True))
    return table


def to_backbone(model):
    """A stock `keras_hub.models.ElectraBackbone` holding the discriminator's weights."""
    import keras_hub

    encoder = model.discriminator
    backbone = keras_hub.models.ElectraBackbone(
        vocab_size=model.vocab_size, num_layers=encoder.num_layers,
        num_heads=encoder.num_heads, hidden_dim=encoder.hidden_size,
        embedding_dim=model.embedding_size, intermediate_dim=encoder.intermediate_size,
        dropout=model.hidden_dropout_prob,
        max_sequence_length=model.max_position_embeddings,
        num_segments=model.type_vocab_size)
    for theirs, ours in _table(backbone, model):
        if tuple(theirs.shape) != tuple(ours.shape):
            raise ValueError(f"{theirs.path}: keras-hub shape {tuple(theirs.shape)} != "
                             f"ours {tuple(ours.shape)} "
                             f"({getattr(ours, 'path', 'merged GDES embeddings')}).")
        theirs.assign(ours)
    return backbone


def export_keras_hub(model, preset_dir, vocab_file=None, do_lower_case=None,
                     strip_accents=None, overwrite=False):
    """Write the discriminator as a keras-hub preset directory (atomically).

    Args:
        model: `ElectraPretrainer`.
        preset_dir: destination (any tf.io.gfile path).
        vocab_file, do_lower_case, strip_accents, overwrite: as
            `export_huggingface` (default to the model's own; casing is never guessed).
    """
    import keras_hub

    from keras_electra.convert.huggingface import _export_vocab, resolve_casing

    if model.discriminator is None:
        raise ValueError("This model has no discriminator (electra_objective=False).")
    tokens, _ = _export_vocab(model, vocab_file)
    do_lower_case, strip_accents = resolve_casing(model, do_lower_case, strip_accents)
    backbone = to_backbone(model)
    tokenizer = keras_hub.models.ElectraTokenizer(
        vocabulary=tokens, lowercase=do_lower_case, strip_accents=strip_accents)
    with tempfile.TemporaryDirectory() as tmp:
        backbone.save_to_preset(tmp)
        tokenizer.save_to_preset(tmp)
        publish_dir(tmp, preset_dir, overwrite=overwrite)
    return preset_dir

