"""Push a pretrained ELECTRA to the Hugging Face Hub, and load it back.

One repository holds everything, uploaded in **one commit** (a failed upload
commits nothing):

    README.md           model card (YAML metadata, hparams, metrics, how to load)
    config.json, model.safetensors, vocab.txt, tokenizer.json,
    tokenizer_config.json, special_tokens_map.json
                        the discriminator, `ElectraForPreTraining` (transformers layout)
    generator/...       the generator, `ElectraForMaskedLM`, same files
    keras/              the keras-electra preset (both towers, shared embeddings,
                        pretraining config) to resume pretraining

    ElectraForPreTraining.from_pretrained("user/repo")
    ElectraForMaskedLM.from_pretrained("user/repo", subfolder="generator")
    ElectraPretrainer.from_preset("hf://user/repo")        # downloads keras/ only

The generator lives in a subfolder rather than a sibling repository so one
commit publishes a consistent pair and one id names the model. `hf://` repos
without `keras/` (google/electra-* style) are imported from the transformers
files (root + `generator/`, or `generator=` another repo).

The token comes from `token=`, else `HF_TOKEN`, else the saved
`hf auth login`; it is only ever handed to huggingface_hub, never
printed, logged or written into the card.

`push` checks the repo id, the model folder, its options and that a token
exists before loading the model or touching the network. A failed upload is
one line (`describe_failure`) naming the Hub endpoint, the repo and what to
check: network/proxy/HF_ENDPOINT, the token, the repo's name and rights, a
rate limit. `PushToHubCallback` reports the same line.
"""

import argparse
import json
import os
import queue
import re
import shutil
import sys
import tempfile
import threading
import time
import warnings

KERAS_SUBFOLDER = "keras"
DEFAULT_COMMIT_MESSAGE = "Upload ELECTRA discriminator, generator and Keras preset (keras-electra)"


class HubUploadError(RuntimeError):
    """An upload failed; the repository has no partial commit from it.

    The message is one line naming the Hub, the repo and what to check.
    `retryable` is true when the same push may succeed later unchanged.
    """

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.retryable = retryable


# --------------------------------------------------------------- staging
def stage_repo(model, folder, repo_id, language=None, license="apache-2.0",
               eval_metrics=None, train_metrics=None, steps=None, vocab_file=None,
               do_lower_case=None, strip_accents=None):
    """Write the whole repository layout (see module docstring) into `folder`."""
    from keras_electra.convert.huggingface import export_huggingface, resolve_casing

    export_huggingface(model, folder, vocab_file=vocab_file, do_lower_case=do_lower_case,
                       strip_accents=strip_accents)
    do_lower_case, strip_accents = resolve_casing(model, do_lower_case, strip_accents)
    model.save_to_preset(os.path.join(folder, KERAS_SUBFOLDER), vocab_file=vocab_file)
    if steps is None and getattr(model, "optimizer", None) is not None:
        steps = int(model.optimizer.iterations.numpy())
    card = model_card(model, repo_id, language=language, license=license,
                      eval_metrics=eval_metrics, train_metrics=train_metrics, steps=steps,
                      do_lower_case=do_lower_case,
                      strip_accents=strip_accents)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(card)
    return folder


def model_card(model, repo_id, language=None, license="apache-2.0", eval_metrics=None,
               train_metrics=None, steps=None, do_lower_case=True, strip_accents=True):
    """README.md text: YAML metadata, then sizes, hparams, metrics and loading code."""
    config = getattr(model, "pretraining_config", None)
    meta = ["---"]
    if language:
        languages = [language] if isinstance(language, str) else list(language)
        meta += ["language:"] + [f"- {code}" for code in languages]
    meta += [f"license: {license}", "library_name: transformers",
             "pipeline_tag: feature-extraction", "tags:", "- electra", "- keras-electra",
             "- keras", "- pretraining", "- replaced-token-detection"]
    meta.append("---")

    sizes = [
        ("vocab_size", model.vocab_size), ("embedding_size", model.embedding_size),
        ("discriminator hidden / layers / heads / FFN",
         f"{model.hidden_size} / {model.num_hidden_layers} / {model.num_attention_heads}"
         f" / {model.intermediate_size}"),
    ]
    if model.generator is not None:
        gen = model.generator
        sizes.append(("generator hidden / layers / heads / FFN",
                      f"{gen.hidden_size} / {gen.num_layers} / {gen.num_heads}"
                      f" / {gen.intermediate_size}"))
    sizes += [("max_position_embeddings", model.max_position_embeddings),
              ("do_lower_case", do_lower_case), ("strip_accents", strip_accents)]
    hparams = []
    if config is not None:
        for key in ("model_size", "learning_rate", "train_batch_size", "max_seq_length",
                    "num_train_steps", "num_warmup_steps", "mask_prob", "gen_weight",
                    "disc_weight", "temperature", "weight_decay_rate", "seed"):
            hparams.append((key, getattr(config, key)))

    def table(rows):
        return ["| | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]

    name = repo_id.split("/")[-1]
    body = [
        f"# {name}",
        "",
        "An [ELECTRA](https://arxiv.org/abs/2003.10555) model pretrained with "
        "[keras-electra](https://github.com/keras-electra/keras-electra): a "
        "discriminator trained to detect tokens replaced by a small masked-LM generator.",
        "",
        "## Files",
        "",
        "- root: the discriminator (`ElectraForPreTraining`), the model to fine-tune",
        "- `generator/`: the generator (`ElectraForMaskedLM`)",
        "- `keras/`: the keras-electra preset (both towers) to continue pretraining",
        "",
        "## Model", "", *table(sizes), "",
    ]
    if hparams:
        body += ["## Pretraining hyperparameters", "", *table(hparams), ""]
    body += [f"Steps trained: {steps if steps is not None else 'unknown'}", ""]
    if eval_metrics:
        body += ["## Final evaluation", "",
                 *table((k, f"{float(v):.4f}") for k, v in sorted(eval_metrics.items())), ""]
    if train_metrics:
        body += [f"## Training metrics at step {steps}", "",
                 *table((k, f"{float(v):.4f}") for k, v in sorted(train_metrics.items())), ""]
    body += [
        "## How to use", "",
        "```python",
        "from transformers import AutoTokenizer, ElectraForPreTraining, ElectraForMaskedLM",
        f'tokenizer = AutoTokenizer.from_pretrained("{repo_id}")',
        f'discriminator = ElectraForPreTraining.from_pretrained("{repo_id}")',
        f'generator = ElectraForMaskedLM.from_pretrained("{repo_id}", subfolder="generator")',
        "```", "",
        "Continue pretraining with Keras:", "",
        "```python",
        "from keras_electra import ElectraPretrainer",
        f'model = ElectraPretrainer.from_preset("hf://{repo_id}")',
        "```", "",
        "Check the discriminator:", "",
        "```bash",
        f'keras-electra detect --model hf://{repo_id} "The chef cooked the meal."',
        "```", "",
    ]
    return "\n".join(meta + [""] + body)


# ----------------------------------------------------------------- upload
def push_to_hub(model_or_dir, repo_id, private=False, token=None, revision=None,
                commit_message=DEFAULT_COMMIT_MESSAGE, **card_kwargs):
    """Create `repo_id` if needed and upload discriminator, generator, preset and card.

    The repo id, the model folder and the token are checked before any model
    is loaded or byte sent, so a typo costs seconds, not an export.

    Args:
        model_or_dir: an `ElectraPretrainer`, a keras-electra preset directory
            or a training folder (models/NAME: its final/ model).
        repo_id: "user/name".
        private: create the repository private (an existing one keeps its visibility).
        token: Hub token; default `HF_TOKEN` or the saved login.
        revision: branch to commit to (created from main if missing).
        commit_message: the commit's summary.
        **card_kwargs: language, license, eval_metrics, steps, vocab_file,
            do_lower_case, strip_accents (see `stage_repo`).

    Returns:
        The commit's url.

    Raises:
        InputError: a bad repo id or model folder, or no token.
        HubUploadError: the upload failed (one line naming the Hub, the repo and
            what to check; never the token). Nothing was committed.
    """
    check_repo_id(repo_id)
    if isinstance(model_or_dir, (str, os.PathLike)):
        model_or_dir = check_model_dir(os.fspath(model_or_dir))
    check_token(token)
    model = _as_model(model_or_dir)
    with tempfile.TemporaryDirectory() as tmp:
        folder = stage_repo(model, os.path.join(tmp, "repo"), repo_id, **card_kwargs)
        return upload_folder(folder, repo_id, private=private, token=token,
                             revision=revision, commit_message=commit_message)


def upload_folder(folder, repo_id, private=False, token=None, revision=None,
                  commit_message=DEFAULT_COMMIT_MESSAGE):
    """Upload a staged folder in one commit; raise `HubUploadError` (token-free) on failure."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                 commit_message=commit_message, repo_type="model")
    except Exception as e:  # noqa: BLE001 - classified below; anything unknown re-raised
        failure = describe_failure(e, repo_id, api.endpoint)
        if failure is None:
            raise
        line, retryable = failure
        raise HubUploadError(_redact(line, token), retryable=retryable) from None
    return getattr(info, "commit_url", str(info))


# ----------------------------------------------------------- pre-flight
def check_repo_id(repo_id):
    """Raise `InputError` unless `repo_id` is "namespace/name" as the Hub accepts it.

    The namespace is required (not the Hub's "your own user" default) because
    the card's `hf://` loading line and `parse_hf_uri` need it.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    from keras_electra.errors import InputError

    how = ("give it as namespace/name, e.g. alice/electra-small (a user or organization, "
           "then the model's name: letters, digits, '-', '_', '.', at most 96 characters)")
    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or "" in repo_id.split("/"):
        raise InputError(f"repo id {repo_id!r} is not namespace/name: {how}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise InputError(f"repo id {repo_id!r} is not a valid Hub name: {how}.") from None


def check_model_dir(model_dir):
    """The keras-electra preset folder to push for `model_dir`; `InputError` naming any other.

    A training folder (models/NAME) means its final/ model, as for export and
    detect (`presets.locate_model`); a transformers export has no Keras
    weights to put in `keras/`, so it is named and refused.
    """
    import tensorflow as tf

    from keras_electra import presets
    from keras_electra.errors import InputError

    usual = ("pass the folder training saved the model in (models/NAME/final) or one "
             "written by save_to_preset")
    if not tf.io.gfile.exists(model_dir):
        raise InputError(f"model folder {model_dir} does not exist: {usual}.")
    if not tf.io.gfile.isdir(model_dir):
        raise InputError(f"{model_dir} is a file, not a model folder: {usual}.")
    kind, folder = presets.locate_model(model_dir)
    if kind != "preset":
        raise InputError(f"{folder} is a transformers export, not a keras-electra model: push "
                         "the model it was exported from (models/NAME/final), or convert it "
                         f"with `keras-electra export {folder} --from huggingface --format "
                         "preset --output DIR` and push DIR.")
    if not tf.io.gfile.exists(os.path.join(folder, presets.WEIGHTS_FILE)):
        raise InputError(f"{folder} has no {presets.WEIGHTS_FILE}: the save did not finish; "
                         "save the model again (model.save_to_preset) and push that folder.")
    return folder


def check_token(token):
    """Raise `InputError` when no token is given, in HF_TOKEN or saved by a login."""
    from huggingface_hub import get_token

    from keras_electra.errors import InputError

    if not token and not get_token():
        raise InputError("no Hugging Face token: log in with `hf auth login` or set HF_TOKEN "
                         "to a token with write access, then run the push again.")


# -------------------------------------------------------------- failures
_NETWORK_ADVICE = ("check your network connection, proxy settings (HTTPS_PROXY) and "
                   "HF_ENDPOINT, then run the push again")
_LOGIN = "`hf auth login` or HF_TOKEN"
# Exception class names, matched along the MRO so httpx, httpx2 and requests
# (huggingface_hub before 1.0) classify alike without importing any of them.
_BAD_URL = {"InvalidURL", "UnsupportedProtocol", "MissingSchema", "InvalidSchema",
            "LocationParseError"}
_NETWORK = {"TransportError", "NetworkError", "ConnectError", "ProxyError", "ProtocolError",
            "ConnectionError", "SSLError", "MaxRetryError", "NewConnectionError", "gaierror",
            "ChunkedEncodingError"}


def describe_failure(error, repo_id, endpoint):
    """(one line, retry?) for a failed push, or None for an error not the Hub's nor the network's.

    The line names the Hub endpoint, the repo and what to check. `retry?` is
    true for faults that may pass on their own (network, timeouts, rate
    limits, server errors); a bad token or repo name fails the same way again.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    namespace = repo_id.split("/")[0]
    status = getattr(getattr(error, "response", None), "status_code", None)
    retry = False
    if "OfflineModeIsEnabled" in names:
        cause, advice = "HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE (or set it to 0) to push"
    elif "LocalTokenNotFoundError" in names:
        cause, advice = "no token found", f"log in with {_LOGIN}"
    elif isinstance(status, int):
        cause, advice, retry = _http_cause(error, status, namespace)
    elif names & _BAD_URL:
        cause = f"HF_ENDPOINT is not a usable URL ({_reason(error)})"
        advice = "set HF_ENDPOINT to the Hub's address (https://huggingface.co) or unset it"
    elif any("Timeout" in name for name in names):
        cause, advice, retry = f"the connection timed out ({_reason(error)})", _NETWORK_ADVICE, True
    elif names & _NETWORK:
        cause, advice, retry = f"cannot connect ({_reason(error)})", _NETWORK_ADVICE, True
    elif isinstance(error, (OSError, ValueError)):
        cause, advice = _reason(error), "run the push again"
    else:
        return None
    where = re.sub(r"//[^/@]*@", "//", endpoint or "").rstrip("/")  # no user:password@
    return (f"could not push to {repo_id} on the Hub at {where}: {cause}. "
            f"Nothing was committed; {advice}.", retry)


def _http_cause(error, status, namespace):
    """(cause, advice, retry?) for an HTTP error status."""
    if status == 401:
        return ("the token was rejected (HTTP 401)",
                f"log in again with {_LOGIN} using a valid token with write access", False)
    if status == 403:
        return (f"the token may not write to namespace '{namespace}' (HTTP 403)",
                f"use a token with write access to '{namespace}' ({_LOGIN}), "
                "or push to a repo in your own namespace", False)
    if status == 404:
        return ("the repo was not found or the token cannot see it (HTTP 404)",
                f"check the repo name and that the token ({_LOGIN}) may write to "
                f"'{namespace}'", False)
    if status == 429:
        wait = error.response.headers.get("Retry-After", "")
        wait = f"{wait} s" if wait.strip().isdigit() else "a few minutes"
        return ("too many requests (HTTP 429: rate limited)",
                f"wait {wait} and run the push again", True)
    if status >= 500 or status == 408:
        return (f"the Hub failed with HTTP {status}", "run the push again later", True)
    detail = getattr(error, "server_message", None) or str(error)
    return (f"HTTP {status} ({_first_line(detail)})",
            "check the repo name and the push options, then run the push again", False)


def _reason(error):
    """The cause inside a network error ("[Errno 111] Connection refused"), else its first line."""
    text = str(error)
    errno = re.search(r"\[Errno -?\d+\][^'\"()\]\[]*", text)
    if errno:
        return errno.group(0).strip()
    return f"{type(error).__name__}: {_first_line(text)}" if text.strip() else type(error).__name__


def _first_line(text, limit=160):
    line = text.strip().splitlines()[0].strip() if text.strip() else ""
    return line if len(line) <= limit else line[:limit - 3] + "..."


def _redact(text, token):
    for secret in (token, os.environ.get("HF_TOKEN")):
        if secret:
            text = text.replace(secret, "***")
    return text


def _as_model(model_or_dir):
    if isinstance(model_or_dir, (str, os.PathLike)):
        from keras_electra import presets
        path = os.fspath(model_or_dir)
        if "://" not in path:  # gs:// and other gfile URLs stay as they are
            path = os.path.abspath(path)
        return presets.load_pretrainer(path)
    return model_or_dir


# --------------------------------------------------------------- callback
try:
    import keras
    _Callback = keras.callbacks.Callback
except ImportError:  # pragma: no cover
    _Callback = object


class PushToHubCallback(_Callback):
    """Push the model to the Hub every `every_n_steps` during `fit`, in the background.

    The training thread only writes a snapshot to a local temporary folder
    (export + preset + card); a worker thread uploads it. Failed uploads are
    retried with exponential backoff and then reported (printed, warned and
    kept in `self.errors`); training never waits on the network and never
    crashes because of it. If a snapshot is still waiting when the next one is
    taken, only the newest is kept. `on_train_end` pushes a final snapshot and
    waits at most `wait_on_train_end` seconds for the uploads. A bad repo id or
    a missing token raise `InputError` here, before training; a rejected token
    or repo is reported once per snapshot without retries (it would fail again).

    Args:
        repo_id: "user/name".
        every_n_steps: int. Optimizer steps between pushes.
        token, private, revision: as `push_to_hub`.
        max_retries: int. Retries after the first failed attempt.
        backoff: float. Seconds before the first retry, doubled each time.
        push_at_end: bool. Push once more when training ends.
        wait_on_train_end: float. Seconds `on_train_end` waits for uploads.
        **card_kwargs: passed to the model card (language, license, ...).
    """

    def __init__(self, repo_id, every_n_steps=1000, token=None, private=False,
                 revision=None, max_retries=3, backoff=2.0, push_at_end=True,
                 wait_on_train_end=600.0, **card_kwargs):
        super().__init__()
        check_repo_id(repo_id)  # before training starts, not at the first push
        check_token(token)
        _check_counts(every_n_steps=every_n_steps, max_retries=max_retries, backoff=backoff,
                      wait_on_train_end=wait_on_train_end)
        self.repo_id = repo_id
        self.every_n_steps = int(every_n_steps)
        self._token = token
        self.private = private
        self.revision = revision
        self.max_retries = max_retries
        self.backoff = backoff
        self.push_at_end = push_at_end
        self.wait_on_train_end = wait_on_train_end
        self.card_kwargs = card_kwargs
        self.uploaded_steps = []
        self.errors = []
        self._pending = queue.Queue(maxsize=1)
        self._worker = None
        self._last_step = None

    def __repr__(self):  # no token in reprs
        return f"PushToHubCallback(repo_id={self.repo_id!r}, every_n_steps={self.every_n_steps})"

    # training thread
    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step and step % self.every_n_steps == 0 and step != self._last_step:
            self._snapshot(step, logs)

    def on_train_end(self, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if self.push_at_end and step != self._last_step:
            self._snapshot(step, logs)
        if self._worker is not None:
            self._pending.put(None)  # no more work
            self._worker.join(self.wait_on_train_end)
            if self._worker.is_alive():
                self._report(f"uploads to {self.repo_id} still running after "
                             f"{self.wait_on_train_end:.0f}s; training ends without them")
            self._worker = None

    def _snapshot(self, step, logs):
        self._last_step = step
        tmp = tempfile.mkdtemp(prefix="keras_electra_push_")
        try:
            metrics = {k: float(v) for k, v in (logs or {}).items()
                       if isinstance(v, (int, float)) or getattr(v, "shape", None) == ()}
            stage_repo(self.model, os.path.join(tmp, "repo"), self.repo_id, steps=step,
                       train_metrics=metrics or None, **self.card_kwargs)
        except Exception as e:  # noqa: BLE001 - never crash training
            shutil.rmtree(tmp, ignore_errors=True)
            self._report(f"could not snapshot step {step}: {type(e).__name__}: {e}")
            return
        self._start_worker()
        while True:
            try:
                self._pending.put_nowait((step, tmp))
                break
            except queue.Full:  # keep only the newest snapshot waiting
                try:
                    _, old = self._pending.get_nowait()
                    shutil.rmtree(old, ignore_errors=True)
                except (queue.Empty, TypeError):
                    pass

    def _start_worker(self):
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(target=self._work, name="push-to-hub",
                                            daemon=True)
            self._worker.start()

    # worker thread
    def _work(self):
        while True:
            item = self._pending.get()
            if item is None:
                return
            step, tmp = item
            try:
                self._upload_with_retries(step, os.path.join(tmp, "repo"))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)

    def _upload_with_retries(self, step, folder):
        """Retry only what may pass on its own; report the same one line `push` prints."""
        delay = self.backoff
        for attempt in range(1, self.max_retries + 2):
            try:
                upload_folder(folder, self.repo_id, private=self.private, token=self._token,
                              revision=self.revision,
                              commit_message=f"keras-electra: step {step}")
                self.uploaded_steps.append(step)
                print(f"[PushToHubCallback] pushed step {step} to {self.repo_id}", flush=True)
                return
            except HubUploadError as e:
                error, retryable = str(e), e.retryable
            except Exception as e:  # noqa: BLE001 - never crash training
                error, retryable = f"{type(e).__name__}: {_first_line(str(e))}", True
            if not retryable or attempt > self.max_retries:
                attempts = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                self._report(f"push of step {step} failed after {attempts}: {error}")
                return
            time.sleep(delay)
            delay *= 2

    def _report(self, message):
        message = _redact(message, self._token)
        self.errors.append(message)
        print(f"[PushToHubCallback] {message}", file=sys.stderr, flush=True)
        warnings.warn(f"PushToHubCallback: {message}", RuntimeWarning, stacklevel=2)


def _check_counts(every_n_steps, **at_least_zero):
    """`every_n_steps` > 0 (a 0 would divide by zero mid-training); the others >= 0."""
    from keras_electra.errors import InputError

    whole = isinstance(every_n_steps, int) and not isinstance(every_n_steps, bool)
    if not whole or every_n_steps < 1:
        raise InputError(f"PushToHubCallback: every_n_steps={every_n_steps!r} must be a whole "
                         "number of optimizer steps, at least 1.")
    for name, value in at_least_zero.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise InputError(f"PushToHubCallback: {name}={value!r} must be a number >= 0.")


# ---------------------------------------------------------------- loading
def parse_hf_uri(uri):
    """"hf://user/repo[@revision]" -> (repo_id, revision or None)."""
    path = uri[len("hf://"):] if uri.startswith("hf://") else uri
    repo_id, _, revision = path.partition("@")
    if repo_id.count("/") != 1:
        raise ValueError(f"{uri!r} is not hf://user/repo[@revision].")
    return repo_id, revision or None


def load_from_hub(uri, generator=None, token=None, **overrides):
    """`ElectraPretrainer` from "hf://user/repo[@revision]" (`from_preset`'s hf:// branch).

    Loads `keras/` (what `push_to_hub` uploads) when present; otherwise imports
    the transformers files: the root discriminator and `generator/`, or the
    repo `generator` ("hf://google/electra-small-generator") for google's layout.
    """
    from huggingface_hub import snapshot_download

    from keras_electra import presets

    repo_id, revision = parse_hf_uri(uri)
    local = snapshot_download(repo_id, revision=revision, token=token,
                              allow_patterns=[f"{KERAS_SUBFOLDER}/*"])
    keras_dir = os.path.join(local, KERAS_SUBFOLDER)
    if os.path.exists(os.path.join(keras_dir, presets.CONFIG_FILE)):
        return presets.load_pretrainer(keras_dir, **overrides)

    from keras_electra.convert.huggingface import import_huggingface

    patterns = ["*.json", "*.txt", "*.safetensors", "*.bin"]
    local = snapshot_download(repo_id, revision=revision, token=token,
                              allow_patterns=patterns + [f"generator/{p}" for p in patterns])
    generator_dir = None
    if generator is not None:
        gen_repo, gen_revision = parse_hf_uri(generator)
        generator_dir = snapshot_download(gen_repo, revision=gen_revision, token=token,
                                          allow_patterns=patterns)
    return import_huggingface(local, generator_dir, **overrides)


# -------------------------------------------------------------------- CLI
def add_arguments(parser):
    parser.add_argument("model", help="keras-electra model folder: models/NAME (its final/) "
                        "or a preset directory")
    parser.add_argument("repo_id", help="Hub repository, user/name")
    parser.add_argument("--private", action="store_true", help="create the repository private")
    parser.add_argument("--revision", help="branch to push to (default main)")
    parser.add_argument("--commit-message", default=DEFAULT_COMMIT_MESSAGE)
    parser.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login; "
                        "prefer those: arguments are visible to other users)")
    parser.add_argument("--language", nargs="*", help="language codes for the card, e.g. en es")
    parser.add_argument("--license", default="apache-2.0")
    parser.add_argument("--eval-metrics", help="JSON file or string of final eval metrics")
    parser.add_argument("--vocab-file", help="vocab.txt (default: the preset's)")
    casing = parser.add_mutually_exclusive_group()
    casing.add_argument("--lower-case", dest="do_lower_case", action="store_true", default=None,
                        help="the data was lower-cased (when the preset does not say)")
    casing.add_argument("--no-lower-case", dest="do_lower_case", action="store_false")


def run(args):
    """`keras-electra push`: inputs checked first, then one line on any upload failure."""
    check_repo_id(args.repo_id)
    folder = check_model_dir(args.model)  # models/NAME means models/NAME/final
    metrics = _eval_metrics(args.eval_metrics) if args.eval_metrics else None
    if args.vocab_file:
        _check_file(args.vocab_file, "--vocab-file",
                    "pass the vocab.txt the model was trained with")
    from keras_electra.errors import InputError

    try:
        url = push_to_hub(folder, args.repo_id, private=args.private, token=args.token,
                          revision=args.revision, commit_message=args.commit_message,
                          language=args.language or None, license=args.license,
                          eval_metrics=metrics, vocab_file=args.vocab_file,
                          do_lower_case=args.do_lower_case)
    except InputError:
        raise  # the CLI prints it (exit 2)
    except (HubUploadError, ValueError) as e:
        print(f"keras-electra push: error: {e}", file=sys.stderr, flush=True)
        return 1
    print(f"Pushed {folder} to {args.repo_id}: {url}")
    return 0


def _eval_metrics(value):
    """--eval-metrics: a JSON object of metric name -> number, inline or in a file."""
    from keras_electra.errors import InputError

    source, text = "--eval-metrics", value
    if not value.lstrip().startswith("{"):
        _check_file(value, "--eval-metrics", "pass a JSON file or an object such as "
                    "'{\"disc_auc\": 0.93}'")
        import tensorflow as tf
        with tf.io.gfile.GFile(value) as f:
            source, text = f"--eval-metrics {value}", f.read()
    example = 'write an object of metric names and numbers, e.g. {"disc_auc": 0.93}'
    try:
        metrics = json.loads(text)
    except ValueError as e:
        raise InputError(f"{source} is not valid JSON ({e}): {example}.") from None
    if not isinstance(metrics, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()):
        raise InputError(f"{source} is not an object of numbers: {example}.")
    return metrics


def _check_file(path, flag, advice):
    import tensorflow as tf

    from keras_electra.errors import InputError

    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        raise InputError(f"{flag} {path}: no such file; {advice}.")


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="keras-electra push")
    add_arguments(parser)
    sys.exit(run(parser.parse_args()))
