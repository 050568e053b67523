"""push_to_hub / PushToHubCallback / hf:// loading against a local fake Hub (tests/fake_hub.py)."""

import errno
import json
import os
import socket
import time

import keras
import numpy as np
import pytest

from keras_electra import hub as electra_hub

from fake_hub import FakeHub
from test_huggingface import our_logits, random_batch, tiny_model, write_vocab

huggingface_hub = pytest.importorskip("huggingface_hub")

TOKEN = "hf_fakeSECRETtoken0123456789"


def _point_hub_at(url, tmp_path, monkeypatch):
    """huggingface_hub pointed at `url` (its constants are read at import), token in HF_TOKEN."""
    from huggingface_hub import constants

    for key, value in {"HF_ENDPOINT": url, "HF_TOKEN": TOKEN,
                       "HF_HUB_DISABLE_XET": "1", "HF_HUB_OFFLINE": "0",
                       "HF_HOME": str(tmp_path / "hf_home")}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                        url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_cache"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))


@pytest.fixture
def fake_hub(tmp_path, monkeypatch):
    """A fake Hub; huggingface_hub pointed at it."""
    with FakeHub(TOKEN) as server:
        _point_hub_at(server.url, tmp_path, monkeypatch)
        yield server


@pytest.fixture
def closed_port_hub(tmp_path, monkeypatch):
    """The url of a loopback port that refuses connections (bound, never listening)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _point_hub_at(url, tmp_path, monkeypatch)
        yield url


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
    for a, b in zip(our_logits(model, ids, mask, segments),
                    our_logits(loaded, ids, mask, segments)):
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
    for a, b in zip(our_logits(model, ids, mask, segments),
                    our_logits(loaded, ids, mask, segments)):
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


# ------------------------------------------------------ failures: one line each
NETWORK_ADVICE = ("check your network connection, proxy settings (HTTPS_PROXY) and HF_ENDPOINT, "
                  "then run the push again.")
REFUSED = f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}"


@pytest.fixture
def preset(model, tmp_path):
    folder = str(tmp_path / "preset")
    model.save_to_preset(folder)
    return folder


def _push_cli(capsys, *argv):
    """Run `keras-electra push ...` in-process; (exit code, stdout, stderr)."""
    from keras_electra import cli

    code = cli.main(["push", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _assert_one_line(err, expected, *secrets):
    assert err == expected + "\n"
    assert "Traceback" not in err
    for secret in (TOKEN, *secrets):
        assert secret not in err


def test_push_cli_connection_refused_is_one_line(closed_port_hub, preset, capsys):
    before = _local_files(preset)
    code, out, err = _push_cli(capsys, preset, "alice/tiny", "--token", TOKEN)
    assert code == 1 and out == ""
    _assert_one_line(err, f"keras-electra push: error: could not push to alice/tiny on the Hub "
                          f"at {closed_port_hub}: cannot connect ({REFUSED}). Nothing was "
                          f"committed; {NETWORK_ADVICE}")
    assert _local_files(preset) == before  # the user's model folder is untouched


def test_push_cli_bad_token_is_one_line(fake_hub, preset, capsys):
    wrong = "hf_wrongTOKENabcdef0123456789"
    code, out, err = _push_cli(capsys, preset, "alice/tiny", "--token", wrong)
    assert code == 1 and out == ""
    _assert_one_line(err, f"keras-electra push: error: could not push to alice/tiny on the Hub "
                          f"at {fake_hub.url}: the token was rejected (HTTP 401). Nothing was "
                          "committed; log in again with `hf auth login` or HF_TOKEN using a valid "
                          "token with write access.", wrong)
    assert "alice/tiny" not in fake_hub.repos


def test_push_cli_other_namespace_is_one_line(fake_hub, preset, capsys):
    fake_hub.namespaces = {"alice"}
    code, _, err = _push_cli(capsys, preset, "bob/tiny")
    assert code == 1
    _assert_one_line(err, f"keras-electra push: error: could not push to bob/tiny on the Hub "
                          f"at {fake_hub.url}: the token may not write to namespace 'bob' "
                          "(HTTP 403). Nothing was committed; use a token with write access to "
                          "'bob' (`hf auth login` or HF_TOKEN), or push to a repo in your own "
                          "namespace.")
    assert "bob/tiny" not in fake_hub.repos


def test_push_cli_repo_the_token_cannot_write_is_one_line(fake_hub, preset, capsys):
    from fake_hub import Repo

    fake_hub.namespaces = {"alice"}
    fake_hub.repos["bob/public"] = Repo(private=False)  # visible, not ours to write
    code, _, err = _push_cli(capsys, preset, "bob/public")
    assert code == 1
    _assert_one_line(err, f"keras-electra push: error: could not push to bob/public on the Hub "
                          f"at {fake_hub.url}: the repo was not found or the token cannot see it "
                          "(HTTP 404). Nothing was committed; check the repo name and that the "
                          "token (`hf auth login` or HF_TOKEN) may write to 'bob'.")
    assert fake_hub.commit_count("bob/public") == 1  # only its initial commit


@pytest.mark.parametrize("status, headers, cause, advice", [
    (429, {"Retry-After": "30"}, "too many requests (HTTP 429: rate limited)",
     "wait 30 s and run the push again."),
    (429, {}, "too many requests (HTTP 429: rate limited)",
     "wait a few minutes and run the push again."),
    (503, {}, "the Hub failed with HTTP 503", "run the push again later."),
])
def test_push_cli_rate_limit_and_server_errors_are_one_line(fake_hub, preset, capsys, status,
                                                            headers, cause, advice):
    fake_hub.fail_next = {"/api/repos/create": 1}
    fake_hub.fail_status, fake_hub.fail_headers = status, headers
    code, _, err = _push_cli(capsys, preset, "alice/limited")
    assert code == 1
    _assert_one_line(err, f"keras-electra push: error: could not push to alice/limited on the "
                          f"Hub at {fake_hub.url}: {cause}. Nothing was committed; {advice}")


@pytest.fixture
def transport_error(tmp_path, monkeypatch):
    """Make every huggingface_hub request raise the exception `set(exc)` chose, as httpx does."""
    import httpx2 as httpx  # what the installed huggingface_hub uses (1.x: httpx)
    from huggingface_hub.utils import _http

    raised = {}

    def handler(request):
        raise raised["exc"](raised["message"], request=request)

    _point_hub_at("https://hub.example", tmp_path, monkeypatch)
    _http.set_client_factory(lambda: httpx.Client(transport=httpx.MockTransport(handler)))
    yield lambda name, message: raised.update(exc=getattr(httpx, name), message=message)
    _http.set_client_factory(_http.default_client_factory)


@pytest.mark.parametrize("name, message, cause, retryable", [
    ("ConnectError", "[Errno -2] Name or service not known",
     "cannot connect ([Errno -2] Name or service not known)", True),
    ("ConnectTimeout", "timed out", "the connection timed out (ConnectTimeout: timed out)", True),
    ("ReadTimeout", "The read operation timed out",
     "the connection timed out (ReadTimeout: The read operation timed out)", True),
    ("ProxyError", "503 Service Unavailable",
     "cannot connect (ProxyError: 503 Service Unavailable)", True),
])
def test_network_failures_are_one_line(transport_error, tmp_path, name, message, cause,
                                       retryable):
    transport_error(name, message)
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "config.json").write_text("{}")
    with pytest.raises(electra_hub.HubUploadError) as error:
        electra_hub.upload_folder(str(tmp_path / "staged"), "alice/tiny", token=TOKEN)
    assert str(error.value) == (f"could not push to alice/tiny on the Hub at https://hub.example: "
                                f"{cause}. Nothing was committed; {NETWORK_ADVICE}")
    assert error.value.retryable is retryable
    assert error.value.__cause__ is None and error.value.__suppress_context__


def test_bad_endpoint_url_is_one_line(transport_error, tmp_path):
    transport_error("UnsupportedProtocol", "Request URL has an unsupported protocol 'ftp://'.")
    with pytest.raises(electra_hub.HubUploadError) as error:
        electra_hub.upload_folder(str(tmp_path), "alice/tiny")
    assert str(error.value) == (
        "could not push to alice/tiny on the Hub at https://hub.example: HF_ENDPOINT is not a "
        "usable URL (UnsupportedProtocol: Request URL has an unsupported protocol 'ftp://'.). "
        "Nothing was committed; set HF_ENDPOINT to the Hub's address (https://huggingface.co) "
        "or unset it.")
    assert not error.value.retryable


def test_requests_exceptions_classify_alike():
    """huggingface_hub before 1.0 raised `requests` exceptions: the same lines come out."""
    import requests

    refused = requests.exceptions.ConnectionError(
        "HTTPSConnectionPool(host='huggingface.co', port=443): Max retries exceeded with url: "
        "/api/repos/create (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection "
        "object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection "
        "refused'))")
    line, retry = electra_hub.describe_failure(refused, "alice/x", "https://user:pw@hf.example/")
    assert line == ("could not push to alice/x on the Hub at https://hf.example: cannot connect "
                    f"([Errno 111] Connection refused). Nothing was committed; {NETWORK_ADVICE}")
    assert retry

    line, retry = electra_hub.describe_failure(
        requests.exceptions.ReadTimeout("Read timed out. (read timeout=10)"), "alice/x",
        "https://hf.example")
    assert "the connection timed out (ReadTimeout: Read timed out. (read timeout=10))" in line
    assert retry

    response = requests.Response()
    response.status_code = 401
    line, retry = electra_hub.describe_failure(
        requests.exceptions.HTTPError("401 Client Error", response=response), "alice/x",
        "https://hf.example")
    assert "the token was rejected (HTTP 401)" in line and not retry
    assert electra_hub.describe_failure(KeyError("bug"), "alice/x", "https://hf.example") is None


def test_offline_mode_is_one_line(fake_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(electra_hub.HubUploadError) as error:
        electra_hub.upload_folder(str(tmp_path), "alice/tiny")
    assert str(error.value) == (
        f"could not push to alice/tiny on the Hub at {fake_hub.url}: HF_HUB_OFFLINE is set. "
        "Nothing was committed; unset HF_HUB_OFFLINE (or set it to 0) to push.")
    assert fake_hub.requests == []


def test_callback_reports_the_same_line_and_never_stops_training(closed_port_hub, model,
                                                                 capsys):
    callback = electra_hub.PushToHubCallback("alice/cb", every_n_steps=2, max_retries=1,
                                             backoff=0.01, wait_on_train_end=60)
    with pytest.warns(RuntimeWarning) as warned:
        _train(model, callback)  # no exception reaches the training loop
    line = (f"could not push to alice/cb on the Hub at {closed_port_hub}: cannot connect "
            f"({REFUSED}). Nothing was committed; {NETWORK_ADVICE}")
    expected = {step: f"push of step {step} failed after 2 attempts: {line}" for step in (2, 4)}
    # Step 2 may be dropped for step 4 if it was still waiting; the newest is always tried.
    assert callback.errors[-1] == expected[4] and set(callback.errors) <= set(expected.values())
    err = capsys.readouterr().err
    assert [row for row in err.splitlines() if "PushToHubCallback" in row] == [
        f"[PushToHubCallback] {message}" for message in callback.errors]
    assert [str(w.message) for w in warned if "PushToHubCallback" in str(w.message)] == [
        f"PushToHubCallback: {message}" for message in callback.errors]
    assert "Traceback" not in err and TOKEN not in err


def test_callback_does_not_retry_a_rejected_token(fake_hub, model, capsys):
    callback = electra_hub.PushToHubCallback("alice/cb", every_n_steps=4, max_retries=3,
                                             backoff=0.01, token="hf_wrongTOKEN0123456789",
                                             push_at_end=False)
    with pytest.warns(RuntimeWarning, match="failed after 1 attempt: "):
        _train(model, callback)
    assert callback.errors == [
        f"push of step 4 failed after 1 attempt: could not push to alice/cb on the Hub at "
        f"{fake_hub.url}: the token was rejected (HTTP 401). Nothing was committed; log in "
        "again with `hf auth login` or HF_TOKEN using a valid token with write access."]
    creates = [path for method, path, _ in fake_hub.requests if path == "/api/repos/create"]
    assert len(creates) == 1  # a rejected token fails again: no retries
    assert "hf_wrongTOKEN0123456789" not in capsys.readouterr().err


# ------------------------------------------- inputs checked before any network work
def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


USUAL = ("pass the folder training saved the model in (models/NAME/final) or one written by "
         "save_to_preset.")
REPO_HOW = ("give it as namespace/name, e.g. alice/electra-small (a user or organization, then "
            "the model's name: letters, digits, '-', '_', '.', at most 96 characters).")


@pytest.mark.parametrize("repo_id, problem", [
    ("tiny", "is not namespace/name"),
    ("alice/tiny/extra", "is not namespace/name"),
    ("alice/", "is not namespace/name"),
    ("alice/bad name", "is not a valid Hub name"),
    ("alice/x--y", "is not a valid Hub name"),
])
def test_push_cli_bad_repo_id(fake_hub, preset, capsys, repo_id, problem):
    code, out, err = _push_cli(capsys, preset, repo_id)
    assert code == 2 and out == ""
    _assert_one_line(err, f"keras-electra push: error: repo id {repo_id!r} {problem}: {REPO_HOW}")
    assert fake_hub.requests == []


def _training_folder(path):
    """What `pretrain` writes first: models/NAME/config.json of hparams."""
    _write(os.path.join(path, "config.json"),
           f'{{"model_name": "run", "model_dir": "{path}", "num_train_steps": 10}}')
    return path


def test_push_cli_model_folder_mistakes(fake_hub, tmp_path, capsys):
    hf_export = os.path.dirname(_write(str(tmp_path / "hf" / "config.json"),
                                       '{"model_type": "electra"}'))
    no_weights = os.path.dirname(_write(str(tmp_path / "half" / "config.json"),
                                        '{"model_config": {}}'))
    ours = {  # the messages of this module, exactly
        str(tmp_path / "missing"): f"model folder {tmp_path / 'missing'} does not exist: {USUAL}",
        _write(str(tmp_path / "file.txt"), "x"):
            f"{tmp_path / 'file.txt'} is a file, not a model folder: {USUAL}",
        hf_export: f"{hf_export} is a transformers export, not a keras-electra model: push the "
                   "model it was exported from (models/NAME/final), or convert it with "
                   f"`keras-electra export {hf_export} --from huggingface --format preset "
                   "--output DIR` and push DIR.",
        no_weights: f"{no_weights} has no model.weights.h5: the save did not finish; save the "
                    "model again (model.save_to_preset) and push that folder.",
    }
    for folder, message in ours.items():
        code, out, err = _push_cli(capsys, folder, "alice/tiny")
        assert code == 2 and out == "", folder
        _assert_one_line(err, f"keras-electra push: error: {message}")
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    unfinished = _training_folder(str(tmp_path / "models" / "run"))
    damaged = os.path.dirname(_write(str(tmp_path / "bad" / "config.json"), '{"model_con'))
    located = {  # presets.locate_model's messages (export and detect say the same)
        empty: f"{empty} is not a model folder",
        unfinished: f"{unfinished} is a training folder with no finished model",
        damaged: f"{damaged}/config.json is not valid JSON",
    }
    for folder, start in located.items():
        code, out, err = _push_cli(capsys, folder, "alice/tiny")
        assert code == 2 and out == "", folder
        assert err.startswith(f"keras-electra push: error: {start}") and err.count("\n") == 1
        assert "Traceback" not in err
    assert fake_hub.requests == []


def test_push_cli_training_folder_pushes_its_final_model(fake_hub, preset, tmp_path, capsys):
    training = _training_folder(str(tmp_path / "models" / "run"))
    final = os.path.join(training, "final")
    os.rename(preset, final)
    code, out, err = _push_cli(capsys, training, "alice/run")
    assert code == 0 and "Traceback" not in err
    assert out.startswith(f"Pushed {final} to alice/run: ")
    files = fake_hub.files("alice/run")
    assert "keras/model.weights.h5" in files and "model.safetensors" in files
    with open(os.path.join(final, "config.json")) as f:
        saved = json.load(f)["model_config"]
    assert json.loads(files["keras/config.json"])["model_config"] == saved


def test_push_cli_bad_options(fake_hub, preset, tmp_path, capsys):
    example = 'write an object of metric names and numbers, e.g. {"disc_auc": 0.93}.'
    bad_json = _write(str(tmp_path / "metrics.json"), '{"disc_auc": 0.9,}')
    cases = [
        (["--eval-metrics", str(tmp_path / "nope.json")],
         f"--eval-metrics {tmp_path / 'nope.json'}: no such file; pass a JSON file or an object "
         "such as '{\"disc_auc\": 0.93}'."),
        (["--eval-metrics", bad_json],
         f"--eval-metrics {bad_json} is not valid JSON (Expecting property name enclosed in "
         f"double quotes: line 1 column 18 (char 17)): {example}"),
        (["--eval-metrics", '{"disc_auc": "high"}'],
         f"--eval-metrics is not an object of numbers: {example}"),
        (["--vocab-file", str(tmp_path / "vocab_missing.txt")],
         f"--vocab-file {tmp_path / 'vocab_missing.txt'}: no such file; pass the vocab.txt the "
         "model was trained with."),
    ]
    for options, message in cases:
        code, out, err = _push_cli(capsys, preset, "alice/tiny", *options)
        assert code == 2 and out == "", options
        _assert_one_line(err, f"keras-electra push: error: {message}")
    assert fake_hub.requests == []


def test_push_cli_without_token(fake_hub, preset, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN")
    code, _, err = _push_cli(capsys, preset, "alice/tiny")
    assert code == 2
    _assert_one_line(err, "keras-electra push: error: no Hugging Face token: log in with `hf auth "
                          "login` or set HF_TOKEN to a token with write access, then run the "
                          "push again.")
    assert fake_hub.requests == []


def test_callback_checks_repo_id_and_token_before_training(fake_hub, monkeypatch):
    from keras_electra.errors import InputError

    with pytest.raises(InputError, match="repo id 'tiny' is not namespace/name"):
        electra_hub.PushToHubCallback("tiny")
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(InputError, match="no Hugging Face token"):
        electra_hub.PushToHubCallback("alice/tiny")


@pytest.mark.parametrize("options, message", [
    ({"every_n_steps": 0}, "every_n_steps=0 must be a whole number of optimizer steps, at "
                           "least 1."),
    ({"every_n_steps": 2.5}, "every_n_steps=2.5 must be a whole number of optimizer steps"),
    ({"max_retries": -1}, "max_retries=-1 must be a number >= 0."),
    ({"backoff": float("nan")}, "backoff=nan must be a number >= 0."),
])
def test_callback_checks_its_numbers_before_training(fake_hub, options, message):
    from keras_electra.errors import InputError

    with pytest.raises(InputError) as error:
        electra_hub.PushToHubCallback("alice/tiny", **options)
    assert str(error.value).startswith(f"PushToHubCallback: {message}")
