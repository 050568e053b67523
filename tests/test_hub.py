"""push_to_hub / PushToHubCallback / hf:// loading against a local fake Hub (tests/fake_hub.py)."""

import os
import time

import keras
import numpy as np
import pytest

from keras_electra import hub as electra_hub

from fake_hub import FakeHub
from test_huggingface import our_logits, random_batch, tiny_model, write_vocab

huggingface_hub = pytest.importorskip("huggingface_hub")

TOKEN = "hf_fakeSECRETtoken0123456789"


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A fake Hub; huggingface_hub pointed at it (its constants are read at import)."""
    from huggingface_hub import constants

    with FakeHub(TOKEN) as server:
        for key, value in {"HF_ENDPOINT": server.url, "HF_TOKEN": TOKEN,
                           "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
                           "HF_HOME": str(tmp_path / "hf_home")}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
        yield server


@pytest.fixture
def model(tmp_path):
    return tiny_model(write_vocab(tmp_path / "vocab.txt"), do_lower_case=False)


def _local_files(folder):
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = open(path, "rb").read()
    return found


def test_push_uploads_everything_in_one_commit_byte_identical(fake_hub, model, tmp_path):
    folder = electra_hub.stage_repo(model, str(tmp_path / "staged"), "alice/tiny",
                                    language=["es", "en"], eval_metrics={"disc_auc": 0.93})
    local = _local_files(folder)
    assert {"README.md", "config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "generator/config.json",
            "generator/model.safetensors", "keras/config.json", "keras/model.weights.h5",
            "keras/vocab.txt"} <= set(local)

    url = electra_hub.upload_folder(folder, "alice/tiny", private=True,
                                    commit_message="first push")
    assert "alice/tiny/commit/" in url
    assert fake_hub.commit_count("alice/tiny") == 2  # the repo's initial + ours: one commit
    assert fake_hub.files("alice/tiny") == local  # byte-identical
    assert fake_hub.repos["alice/tiny"].private

    card = local["README.md"].decode()
    assert card.startswith("---\nlanguage:\n- es\n- en\nlicense: apache-2.0")
    assert "pipeline_tag:" in card and "- electra" in card and "disc_auc | 0.9300" in card
    assert 'from_preset("hf://alice/tiny")' in card and "do_lower_case | False" in card
    assert all(TOKEN.encode() not in data for data in local.values())
    # The token was sent (as a header) and private really means private:
    writes = [h for method, _, h in fake_hub.requests if method == "POST"]
    assert writes and all(h.get("authorization") == f"Bearer {TOKEN}" for h in writes)
    with pytest.raises(huggingface_hub.errors.RepositoryNotFoundError):
        huggingface_hub.HfApi(token=False).model_info("alice/tiny")


def test_push_to_hub_revision_and_round_trip_through_hf_uri(fake_hub, model):
    electra_hub.push_to_hub(model, "alice/rt", revision="dev")
    assert "keras/model.weights.h5" in fake_hub.files("alice/rt", "dev")
    assert fake_hub.files("alice/rt", "main") == {}  # main untouched
    assert not fake_hub.repos["alice/rt"].private

    loaded = electra_hub.load_from_hub("hf://alice/rt@dev")
    ids, mask, segments = random_batch(120)
    for a, b in zip(our_logits(model, ids, mask, segments), our_logits(loaded, ids, mask, segments)):
        np.testing.assert_array_equal(a, b)
    assert loaded.pretraining_config.do_lower_case is False

    from keras_electra import presets
    if "hf://" not in open(presets.__file__).read():
        pytest.skip("presets.load_pretrainer has no hf:// hook yet (see keras_electra/hub.py)")
    from keras_electra.pretrainer import ElectraPretrainer
    again = ElectraPretrainer.from_preset("hf://alice/rt@dev")
    np.testing.assert_array_equal(our_logits(again, ids, mask, segments)[0],
                                  our_logits(model, ids, mask, segments)[0])


def test_hf_uri_without_keras_folder_imports_transformers_files(fake_hub, model, tmp_path):
    from keras_electra.convert.huggingface import export_huggingface

    folder = export_huggingface(model, str(tmp_path / "hf_only"))
    electra_hub.upload_folder(folder, "google-like/electra")
    loaded = electra_hub.load_from_hub("hf://google-like/electra")
    ids, mask, segments = random_batch(120)
    for a, b in zip(our_logits(model, ids, mask, segments), our_logits(loaded, ids, mask, segments)):
        assert float(np.abs(a - b).max()) < 1e-5


def test_server_error_mid_upload_commits_nothing(fake_hub, model, tmp_path):
    folder = electra_hub.stage_repo(model, str(tmp_path / "staged"), "alice/err")
    fake_hub.fail_next = {"/commit/": 1}
    with pytest.raises(electra_hub.HubUploadError) as error:
        electra_hub.upload_folder(folder, "alice/err")
    message = str(error.value)
    assert "500" in message and "Nothing was committed" in message and TOKEN not in message
    assert fake_hub.commit_count("alice/err") == 1  # only the initial commit
    assert fake_hub.files("alice/err") == {}
    electra_hub.upload_folder(folder, "alice/err")  # a retry succeeds
    assert fake_hub.commit_count("alice/err") == 2


def _train(model, callback, steps=4):
    """Drive the callback as `fit` does, one hook call per optimizer step.

    (A real `fit` would first trace the whole pretraining step, ~40 s on the
    test machine; the Keras hook protocol is all the callback sees anyway.)
    """
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    callback.set_model(model)
    callback.on_train_begin()
    for step in range(1, steps + 1):
        model.optimizer.iterations.assign(step)
        started = time.monotonic()
        callback.on_train_batch_end(step - 1, {"loss": 10.0 / step, "disc_auc": 0.5})
        assert time.monotonic() - started < 10  # a local snapshot, never the network
    callback.on_train_end({"loss": 2.5})


def test_callback_failures_never_stop_training(fake_hub, model, capsys):
    fake_hub.fail_next = {"/commit/": 1000}
    callback = electra_hub.PushToHubCallback("alice/cb-fail", every_n_steps=2,
                                             max_retries=1, backoff=0.01,
                                             wait_on_train_end=60)
    with pytest.warns(RuntimeWarning, match="failed after 2 attempts"):
        _train(model, callback)  # no exception reaches the training loop
    assert callback.errors and not callback.uploaded_steps
    output = capsys.readouterr()
    assert "failed after 2 attempts" in output.err and "HTTP 500" in output.err
    assert TOKEN not in output.out + output.err + " ".join(callback.errors) + repr(callback)


def test_callback_uploads_in_background(fake_hub, model):
    callback = electra_hub.PushToHubCallback("alice/cb", every_n_steps=2, backoff=0.01)
    _train(model, callback)
    assert 4 in callback.uploaded_steps and not callback.errors
    files = fake_hub.files("alice/cb")
    assert "keras/model.weights.h5" in files and "generator/model.safetensors" in files
    assert "Training metrics at step 4" in files["README.md"].decode()


def test_push_cli(fake_hub, model, tmp_path):
    from keras_electra import cli

    model.save_to_preset(str(tmp_path / "preset"))
    assert cli.main(["push", str(tmp_path / "preset"), "alice/cli", "--private",
                     "--language", "en"]) == 0
    assert "model.safetensors" in fake_hub.files("alice/cli")
    assert fake_hub.repos["alice/cli"].private
