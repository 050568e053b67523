"""`ElectraClassifier` -> a transformers `ElectraForSequenceClassification` folder.

    export_dir/   config.json (with id2label/label2id)  model.safetensors
                  vocab.txt  tokenizer.json  tokenizer_config.json  special_tokens_map.json

    ElectraForSequenceClassification.from_pretrained(export_dir)
    AutoTokenizer.from_pretrained(export_dir)   # the model's casing

The backbone's weight table, config fields and tokenizer files are those of the
discriminator export (`convert.huggingface`); the head maps one to one onto
transformers' `ElectraClassificationHead` (`classifier.dense`, `classifier.out_proj`).
"""

import os
import tempfile

from keras_electra.convert import publish_dir, read_vocab, special_token_ids
from keras_electra.convert.huggingface import (COPY, DENSE, WEIGHTS_FILE, _tower_table,
                                               _write_json, _write_safetensors, hf_config,
                                               write_tokenizer_files)
from keras_electra.errors import InputError

ARCHITECTURE = "ElectraForSequenceClassification"


def classifier_table(model):
    """[(transformers name, variable, layout)] of `ElectraForSequenceClassification`."""
    head = model.head
    return _tower_table(model.embeddings.named_weights(), model.encoder) + [
        ("classifier.dense.weight", head.dense.kernel, DENSE),
        ("classifier.dense.bias", head.dense.bias, COPY),
        ("classifier.out_proj.weight", head.out_proj.kernel, DENSE),
        ("classifier.out_proj.bias", head.out_proj.bias, COPY),
    ]


def classifier_config(model, pad_token_id):
    """The transformers config dict: the discriminator's fields, the labels, the head."""
    config = hf_config(model, model.encoder, ARCHITECTURE, pad_token_id)
    config.update({
        "id2label": {str(i): label for i, label in enumerate(model.labels)},
        "label2id": {label: i for i, label in enumerate(model.labels)},
        "problem_type": "single_label_classification",
        "classifier_dropout": model.head.dropout,
    })
    return config


def write_huggingface_files(model, folder):
    """Write the transformers files of `model` into the local folder `folder`."""
    if not model.vocab_file:
        raise InputError("The classifier has no vocab.txt: the tokenizer is part of the "
                         "export; set classifier.vocab_file.")
    if model.do_lower_case is None:
        raise InputError("The classifier does not record how its text was cased, so the "
                         "exported tokenizer cannot say: pass do_lower_case when building it "
                         "(CLI: --lower-case / --no-lower-case).")
    tokens = read_vocab(model.vocab_file)
    if len(tokens) != model.vocab_size:
        raise InputError(f"{model.vocab_file} has {len(tokens)} tokens but the model's "
                         f"vocab_size is {model.vocab_size}: wrong vocabulary?")
    special = special_token_ids(tokens, model.vocab_file)
    _write_json(os.path.join(folder, "config.json"), classifier_config(model, special["pad"]))
    _write_safetensors(os.path.join(folder, WEIGHTS_FILE), classifier_table(model))
    from keras_electra.data.tokenization import effective_strip_accents

    write_tokenizer_files(folder, tokens, model.do_lower_case,
                          effective_strip_accents(model.do_lower_case, model.strip_accents),
                          model.max_position_embeddings)


def export_classifier_huggingface(model, export_dir, overwrite=False):
    """Write `model` as an `ElectraForSequenceClassification` folder (new, empty or a
    previous output of ours, replaced atomically: `convert.publish`). Returns it."""
    with tempfile.TemporaryDirectory() as tmp:
        write_huggingface_files(model, tmp)
        publish_dir(tmp, export_dir, overwrite=overwrite)
    return export_dir
