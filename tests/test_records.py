"""build-dataset: parity with the official ExampleBuilder, format, manifest, safety, bad input."""

import hashlib
import json
import random
import shutil

import pytest

import official_port
from data_helpers import build_dataset, build_vocab, read_examples
from keras_electra import cli
from keras_electra.data import corpus as corpus_lib
from keras_electra.data import records, vocab
from keras_electra.errors import InputError
from keras_electra.data.tokenization import FullTokenizer

SEQ = 64


@pytest.fixture(scope="module")
def small_corpus(corpora_dir, tmp_path_factory):
    """Three Spanish files plus the first 2000 lines of Shakespeare (no blank-line docs)."""
    root = tmp_path_factory.mktemp("corpus")
    for name in ("amistad.txt", "arte.txt", "ciencia.txt"):
        shutil.copy(corpora_dir / "es_fortunes" / name, root / name)
    lines = (corpora_dir / "en_shakespeare" / "input.txt").read_text("utf-8").split("\n")
    (root / "shakespeare.txt").write_text("\n".join(lines[:2000]) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def vocab_file(small_corpus, tmp_path_factory):
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    build_vocab(["--corpus-dir", small_corpus, "--vocab-size", 1000, "--no-lower-case",
                 "--output", path])
    return path


def official_examples(corpus_dir, vocab_file, seed, lower, blanks):
    """The official ExampleBuilder (straight port) over each file, one rng per file.

    Tokens come from our FullTokenizer, which test_vocab checks id-for-id against the
    official FullTokenizer port (that port is slow; the builder is what is tested here).
    Per-file `random.Random(f"{seed}:{name}")` and a fresh builder per file is our
    documented departure (examples independent of the process count).
    """
    tokens = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
    tokenizer = FullTokenizer({t: i for i, t in enumerate(tokens)}, do_lower_case=lower)

    class PortTokenizer:  # the interface the official builder calls
        vocab = tokenizer.vocab
        tokenize = staticmethod(tokenizer.tokenize)
        convert_tokens_to_ids = staticmethod(
            lambda toks: [tokenizer.vocab[t] for t in toks])

    out = []
    for path in sorted(corpus_dir.iterdir()):
        builder = official_port.ExampleBuilder(PortTokenizer, SEQ,
                                               random.Random(f"{seed}:{path.name}"))
        with open(path, encoding="utf-8", newline="\n") as f:
            out.extend(official_port.write_examples_for_file(builder, f, blanks))
    return [tuple(tuple(x) for x in ex) for ex in out]


@pytest.mark.parametrize("lower,blanks", [(False, "true"), (True, "False")])
def test_examples_match_official_builder(small_corpus, vocab_file, tmp_path, lower, blanks):
    out = tmp_path / "out"
    build_dataset(["--corpus-dir", small_corpus, "--vocab-file", vocab_file, "--output-dir",
                   out, "--max-seq-length", SEQ, "--num-out-files", 1, "--seed", 7,
                   "--do-lower-case" if lower else "--no-lower-case",
                   "--blanks-separate-docs", blanks])
    ours = read_examples([out / "pretrain_data.tfrecord-0-of-1"], SEQ)
    expected = official_examples(small_corpus, vocab_file, 7, lower, blanks == "true")
    assert len(ours) == len(expected) > 100
    assert ours == expected  # same examples, same order
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_examples"] == len(expected)
    assert manifest["blanks_separate_docs"] is (blanks == "true")
    if blanks == "False":
        assert manifest["num_documents"] == 4  # one per file


@pytest.fixture(scope="module")
def one_process_out(small_corpus, vocab_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("records") / "out"
    build_dataset(["--corpus-dir", small_corpus, "--vocab-file", vocab_file, "--output-dir",
                   out, "--max-seq-length", SEQ, "--num-out-files", 3, "--no-lower-case"])
    return out


def test_records_layout_and_manifest(small_corpus, vocab_file, one_process_out, tmp_path):
    out = one_process_out
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json"] + [f"pretrain_data.tfrecord-{i}-of-3" for i in range(3)]
    examples = read_examples(sorted(out.glob("pretrain_data.tfrecord-*")), SEQ)
    ids = ids_of = vocab.special_token_ids(vocab.load_vocab(str(vocab_file)))
    two_segments = 0
    for input_ids, mask, segments in examples:
        n = sum(mask)
        assert mask == (1,) * n + (0,) * (SEQ - n)
        assert input_ids[n:] == segments[n:] == (0,) * (SEQ - n)
        assert input_ids[0] == ids["cls"] and input_ids[n - 1] == ids["sep"]
        seps = [i for i in range(n) if input_ids[i] == ids["sep"]]
        if segments[n - 1] == 1:  # [CLS] A [SEP] B [SEP]
            two_segments += 1
            a_end = segments.index(1) - 1
            assert seps == [a_end, n - 1] and set(segments[:a_end + 1]) == {0}
            assert set(segments[a_end + 1:n]) == {1}
        else:  # [CLS] A [SEP]
            assert seps == [n - 1] and set(segments[:n]) == {0}
    assert 0 < two_segments < len(examples)

    manifest = json.loads((out / "manifest.json").read_text())
    # Documents, counted independently: non-empty blocks between blank lines, per file.
    docs = 0
    for path in small_corpus.iterdir():
        blocks = path.read_text("utf-8").replace("\r", "").split("\n")
        in_doc = False
        for line in blocks + [""]:
            if line.strip():
                in_doc = True
            elif in_doc:
                docs, in_doc = docs + 1, False
    assert manifest["num_documents"] == docs
    assert manifest["num_examples"] == len(examples)
    assert manifest["num_tokens"] == sum(sum(ex[1]) for ex in examples)
    # Tokens read (tokenized here, line by line) and written (in the records, less
    # [CLS]/[SEP]) agree with the manifest, per corpus file and in total.
    tokens = vocab_file.read_text(encoding="utf-8").split("\n")[:-1]
    tokenizer = FullTokenizer({t: i for i, t in enumerate(tokens)}, do_lower_case=False)
    read = {str(p): sum(len(tokenizer.tokenize(line.strip()))
                        for line in p.read_text("utf-8").split("\n"))
            for p in small_corpus.iterdir()}
    written = sum(sum(mask) - 1 - ids[:sum(mask)].count(ids_sep)
                  for ids, mask, _ in examples for ids_sep in [ids_of["sep"]])
    per_file = manifest["per_corpus_file"]
    assert {p: i["tokens_read"] for p, i in per_file.items()} == read
    assert manifest["num_tokens_read"] == manifest["num_corpus_tokens"] == sum(read.values())
    assert manifest["num_tokens_written"] == written == sum(
        i["tokens_written"] for i in per_file.values())
    assert 0 < manifest["num_tokens_dropped"] == sum(read.values()) - written
    assert {p: i["bytes"] for p, i in per_file.items()} == {
        str(p): p.stat().st_size for p in small_corpus.iterdir()}
    assert manifest["max_dropped_ratio"] == records.MAX_DROPPED_RATIO
    assert manifest["vocab_sha256"] == hashlib.sha256(vocab_file.read_bytes()).hexdigest()
    assert manifest["max_seq_length"] == SEQ and manifest["do_lower_case"] is False
    assert manifest["strip_accents"] is False  # never when cased (official rule)
    assert {n: i["bytes"] for n, i in manifest["files"].items()} == {
        p.name: p.stat().st_size for p in out.glob("pretrain_data.tfrecord-*")}
    assert sum(i["examples"] for i in manifest["files"].values()) == len(examples)

    loaded = records.read_manifest(str(out))
    records.check_manifest(loaded, vocab_file=str(vocab_file), max_seq_length=SEQ,
                           do_lower_case=False)
    with pytest.raises(ValueError, match="max_seq_length=64 .* but training uses "
                                         "max_seq_length=128: set max_seq_length=64"):
        records.check_manifest(loaded, vocab_file=str(vocab_file), max_seq_length=128)
    other = tmp_path / "other_vocab.txt"
    other.write_bytes(vocab_file.read_bytes() + b"extra\n")
    with pytest.raises(ValueError, match="another vocab .*other_vocab.txt"):
        records.check_manifest(loaded, vocab_file=str(other), max_seq_length=SEQ)
    with pytest.raises(ValueError, match="do_lower_case=False .* do_lower_case=True"):
        records.check_manifest(loaded, vocab_file=str(vocab_file), max_seq_length=SEQ,
                               do_lower_case=True)
    assert records.read_manifest(str(tmp_path)) is None


def test_cli_two_processes_give_the_same_examples(small_corpus, vocab_file, one_process_out,
                                                  tmp_path):
    """End to end through `keras-electra build-dataset`, with 2 spawned workers."""
    out = tmp_path / "out"
    assert cli.main(["build-dataset", "--corpus-dir", str(small_corpus), "--vocab-file",
                     str(vocab_file), "--output-dir", str(out), "--max-seq-length", str(SEQ),
                     "--num-out-files", "3", "--num-processes", "2", "--no-lower-case"]) == 0
    two = read_examples(sorted(out.glob("pretrain_data.tfrecord-*")), SEQ)
    one = read_examples(sorted(one_process_out.glob("pretrain_data.tfrecord-*")), SEQ)
    assert len(one) > 100
    assert sorted(one) == sorted(two)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_documents"] == json.loads(
        (one_process_out / "manifest.json").read_text())["num_documents"]


def test_existing_output_is_kept_unless_overwrite(small_corpus, vocab_file, tmp_path):
    out = tmp_path / "out"
    common = ["--corpus-dir", small_corpus, "--vocab-file", vocab_file, "--output-dir", out,
              "--max-seq-length", SEQ, "--no-lower-case"]
    build_dataset(common + ["--num-out-files", 4])
    (out / "notes.txt").write_text("mine")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(SystemExit, match="already holds 5 record/manifest file.*--overwrite"):
        build_dataset(common + ["--num-out-files", 2, "--seed", 3])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    # Interrupted while writing: no final-named file is touched, no temp folder left.
    calls = []
    original = records.RecordFiles.write

    def interrupted(self, index, data):
        calls.append(sorted(p.name for p in out.iterdir()))
        raise KeyboardInterrupt

    records.RecordFiles.write = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            build_dataset(common + ["--num-out-files", 2, "--overwrite"])
    finally:
        records.RecordFiles.write = original
    assert any(n.startswith(".incomplete-") for n in calls[0])  # new files go to a temp dir
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    build_dataset(common + ["--num-out-files", 2, "--overwrite"])
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest.json", "notes.txt", "pretrain_data.tfrecord-0-of-2",
                     "pretrain_data.tfrecord-1-of-2"]
    assert json.loads((out / "manifest.json").read_text())["num_out_files"] == 2


def test_example_encoding_and_framing_match_tensorflow(tmp_path):
    """Our hand-written Example bytes and TFRecord framing vs TensorFlow's own."""
    import tensorflow as tf

    rng = random.Random(0)
    spec = {n: tf.io.FixedLenFeature([SEQ], tf.int64) for n in records.FEATURES}
    builder = records.ExampleBuilder(SEQ, 2, 3, rng)
    encoders = {v: records.ExampleEncoder(SEQ, 2, 3, v - 1) for v in (30, 130, 30522, 250000)}
    serialized = []
    for i in range(400):
        vocab_size = list(encoders)[i % len(encoders)]
        first = [rng.randrange(vocab_size) for _ in range(rng.randrange(1, SEQ - 1))]
        second = [rng.randrange(vocab_size)
                  for _ in range(rng.randrange(0, max(0, SEQ - len(first) - 3) + 1))]
        example = builder._layout(first[:SEQ - 2], second)
        proto = tf.train.Example(features=tf.train.Features(feature={
            n: tf.train.Feature(int64_list=tf.train.Int64List(value=v))
            for n, v in zip(records.FEATURES, example)}))
        ours = records.serialize(example)
        assert ours == proto.SerializeToString(deterministic=True)
        assert encoders[vocab_size].encode(first[:SEQ - 2], second) == (ours, sum(example[1]))
        parsed = tf.io.parse_single_example(ours, spec)
        assert tuple(parsed[n].numpy().tolist() for n in records.FEATURES) == example
        serialized.append(ours)
    general = ([2, -1, 2**40, 0], [1, 1, 1, 0], [0, 0, 1, 0])  # negative, huge values
    assert tf.train.Example.FromString(records.serialize(general)).features.feature[
        "input_ids"].int64_list.value == general[0]

    payloads = serialized + [b"", bytes(range(256)) * 20]  # empty and long records too
    with tf.io.TFRecordWriter(str(tmp_path / "tf")) as writer:
        for data in payloads:
            writer.write(data)
    files = records.RecordFiles([str(tmp_path / "ours"), str(tmp_path / "unused")])
    files.BATCH = 7  # several batches
    for data in payloads:
        files.write(0, data)
    files.close()
    assert (tmp_path / "ours").read_bytes() == (tmp_path / "tf").read_bytes()
    assert (tmp_path / "unused").read_bytes() == b""


def test_bad_inputs_fail_before_work(corpora_dir, small_corpus, vocab_file, tmp_path, capsys):
    outs = iter(tmp_path / f"out{i}" for i in range(100))

    def run(corpus, *extra, vocab_path=vocab_file):
        nonlocal out
        out = next(outs)
        build_dataset(["--corpus-dir", corpus, "--vocab-file", vocab_path, "--output-dir",
                       out, "--max-seq-length", SEQ, "--num-out-files", 2, *extra])

    out = None
    bad_dir = corpora_dir / "bad_inputs"
    with pytest.raises(SystemExit, match="latin1_spanish.txt: 106 bad byte.*--encoding-errors"):
        run(bad_dir)
    assert not out.exists()
    run(bad_dir, "--encoding-errors", "replace")
    manifest = json.loads((out / "manifest.json").read_text())
    assert any("non-UTF-8" in w for w in manifest["warnings"])
    with pytest.raises(SystemExit, match="does not exist"):
        run(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="contains no files"):
        run(empty)
    (empty / "blank.txt").write_text("\n \n\t\n")
    with pytest.raises(SystemExit, match="contain no text"):
        run(empty)
    (empty / "blank.txt").write_text("\x01\x02\n")  # text that tokenizes to nothing
    with pytest.raises(SystemExit, match="produced no examples"):
        run(empty)
    missing_mask = tmp_path / "vocab_no_mask.txt"
    missing_mask.write_text(vocab_file.read_text("utf-8").replace("[MASK]\n", "[MASKED]\n"))
    with pytest.raises(SystemExit, match="vocab_no_mask.txt is missing required special "
                                         "token.*MASK"):
        run(small_corpus, vocab_path=missing_mask)
    with pytest.raises(SystemExit, match="--max-seq-length 4 is too small"):
        run(small_corpus, "--max-seq-length", 4)
    with pytest.raises(SystemExit, match="--num-processes 3 must be between 1 and"):
        run(small_corpus, "--num-processes", 3)


def test_tiny_corpus_long_line_and_binary_file(tmp_path, vocab_file, capsys):
    """A line the official truncation would mostly drop: an error naming the file and the
    fixes; accepted with --allow-dropped-text (and counted); kept with --max-line-bytes."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Hola mundo.\n")  # fewer tokens than one example
    (corpus / "b.txt").write_text(" ".join(["palabra"] * 30000) + "\n")  # one 240 kB line
    (corpus / "c.bin").write_bytes(b"\x00\x01binary")
    out = tmp_path / "out"
    common = ["--corpus-dir", corpus, "--vocab-file", vocab_file, "--output-dir", out,
              "--max-seq-length", 16, "--num-out-files", 2, "--max-line-bytes", 10000]
    with pytest.raises(InputError) as error:
        build_dataset(common)
    message = str(error.value)
    assert message.startswith(f"{corpus / 'b.txt'}: ")
    assert "(99.4%) dropped" in message and "--max-seq-length 16" in message
    assert "Split long lines into sentences" in message
    assert "--max-line-bytes 16 " in message  # ~4 bytes a token, a quarter of 16 tokens
    assert "--allow-dropped-text" in message and "more than 50%" in message
    assert not out.exists()  # created by the run, removed with everything in it

    build_dataset(common + ["--allow-dropped-text"])
    text = capsys.readouterr().out
    assert f"skipped 1 binary file(s): {corpus / 'c.bin'}" in text
    assert "1 line(s) longer than 10000 bytes were cut" in text
    assert f"warning: {corpus / 'b.txt'}: " in text and "(99.4%) dropped" in text
    assert f"warning: {corpus / 'a.txt'}" not in text  # nothing dropped there
    manifest = json.loads((out / "manifest.json").read_text())
    # 240 kB cut into 24+ sentences of <= 10 kB: at least one example each, plus "Hola".
    assert manifest["num_examples"] >= 25 and manifest["corpus_files"] == 2
    assert manifest["max_dropped_ratio"] is None
    b = manifest["per_corpus_file"][str(corpus / "b.txt")]
    assert b["tokens_written"] < 0.01 * b["tokens_read"]
    assert any(w.startswith(f"{corpus / 'b.txt'}: ") for w in manifest["warnings"])

    kept = tmp_path / "kept"
    build_dataset(["--corpus-dir", corpus, "--vocab-file", vocab_file, "--output-dir", kept,
                   "--max-seq-length", 16, "--num-out-files", 2,
                   "--max-line-bytes", 16])  # the suggested value
    manifest = json.loads((kept / "manifest.json").read_text())
    b = manifest["per_corpus_file"][str(corpus / "b.txt")]
    assert b["tokens_written"] > 0.8 * b["tokens_read"]


@pytest.mark.parametrize("processes", [1, 2])
def test_dropped_text_error_publishes_nothing(small_corpus, vocab_file, tmp_path, capsys,
                                              monkeypatch, processes):
    """Through the CLI, over records a user already has: one error line, exit 2, the
    folder byte-for-byte as before, and the build stopped at the first lossy file."""
    out = tmp_path / "out"
    build_dataset(["--corpus-dir", small_corpus, "--vocab-file", vocab_file, "--output-dir",
                   out, "--max-seq-length", SEQ, "--num-out-files", 2, "--no-lower-case"])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a_long.txt").write_text("Hola mundo. " * 5000 + "\n")
    for name in ("b.txt", "c.txt", "d.txt"):
        shutil.copy(small_corpus / "amistad.txt", corpus / name)
    opened = []
    lines = corpus_lib.LineReader.lines
    monkeypatch.setattr(corpus_lib.LineReader, "lines",
                        lambda self, path: opened.append(path) or lines(self, path))
    capsys.readouterr()
    code = cli.main(["build-dataset", "--corpus-dir", str(corpus), "--vocab-file",
                     str(vocab_file), "--output-dir", str(out), "--max-seq-length", str(SEQ),
                     "--num-out-files", "4", "--num-processes", str(processes),
                     "--no-lower-case", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"keras-electra build-dataset: error: {corpus / 'a_long.txt'}: " in err
    assert "--allow-dropped-text" in err and "Nothing was written." in err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no staging folder
    if processes == 1:
        assert opened == [str(corpus / "a_long.txt")]  # stopped before reading b, c, d


def test_help_documents_the_dropped_text_threshold(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["build-dataset", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert ("warns above 20% dropped, and stops without writing anything when a file loses "
            "more than 50%; this flag accepts the loss") in text
    assert records.WARN_DROPPED_RATIO == 0.2 and records.MAX_DROPPED_RATIO == 0.5


def test_max_line_bytes_too_small(small_corpus, vocab_file, tmp_path):
    with pytest.raises(InputError, match="--max-line-bytes 15 is too small: pass at least 16"):
        build_dataset(["--corpus-dir", small_corpus, "--vocab-file", vocab_file,
                       "--output-dir", tmp_path / "out", "--max-line-bytes", 15])
    assert not (tmp_path / "out").exists()
