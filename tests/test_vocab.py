"""build-vocab, vocab checks, and tokenizer parity with the official FullTokenizer."""

import hashlib
import unicodedata
import uuid

import pytest
import tensorflow as tf

import official_port
from data_helpers import build_vocab
from keras_electra import cli
from keras_electra.data import corpus, vocab
from keras_electra.data.tokenization import FullTokenizer
from keras_electra.errors import InputError

ACCENTED = set("áéíóúñÁÉÍÓÚÑ")


def corpus_lines(corpora_dir):
    """Every distinct line of every shared corpus file (the Latin-1 one decoded as Latin-1).

    Tokenization is per line, so repeated lines would only repeat the same check.
    """
    lines = set()
    for path in sorted(corpora_dir.rglob("*.txt")):
        encoding = "latin-1" if "bad_inputs" in path.parts else "utf-8"
        with open(path, encoding=encoding, newline="\n") as f:
            lines.update(f)
    return sorted(lines)


# Lines exercising every branch of BERT basic tokenization.
EDGE_LINES = [
    "Straße ΟΔΟΣ İstanbul ﬁne",  # str.lower() specials, not case folding
    "a\x00b\x01c\ufffdd e\x1cf g\u2028h i\u00a0j",  # NUL, controls, U+FFFD, separators
    "中文字abc，日本語 한국어",  # CJK spacing; Hangul is not CJK here
    "cafe\u0301 naïve Ångström",  # combining and precomposed accents
    "x" * 199 + " " + "y" * 201,  # the 200-character word limit
    "$5 ^caret^ `tick` ~tilde~ ¿Qué? ¡Sí! «citas» — guion…",
    "",
    "   \t  ",
]


@pytest.fixture(scope="module")
def vocabs(corpora_dir, tmp_path_factory):
    """Small vocabs learned from the corpora (small, so [UNK] and ## pieces both occur)."""
    out = {}
    for lower in (False, True):
        path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
        flag = "--lower-case" if lower else "--no-lower-case"
        build_vocab(["--corpus-dir", corpora_dir / "es_fortunes", "--vocab-size", 1500, flag,
                     "--output", path, "--reserved", "[unused0],[unused1]"])
        out[lower] = path
    return out


def test_build_vocab_cased_spanish_keeps_case_and_accents(corpora_dir, tmp_path, capsys):
    path = tmp_path / "vocab.txt"
    build_vocab(["--corpus-dir", corpora_dir / "es_fortunes", "--vocab-size", 3000,
                 "--no-lower-case", "--no-strip-accents", "--output", path,
                 "--reserved", "[unused0]", "--reserved", "[unused1]"])
    tokens = path.read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens[:7] == list(vocab.SPECIAL_TOKENS) + ["[unused0]", "[unused1]"]
    assert len(tokens) == 3000 == len(set(tokens))
    assert any(ACCENTED & set(t) for t in tokens)
    assert any(t[:1].isupper() for t in tokens)
    assert any(t.startswith("##") for t in tokens)
    out = capsys.readouterr().out
    assert "[UNK] rate" in out and "pieces per word" in out and "3000 entries" in out
    assert not list(tmp_path.glob("*.tmp-*"))  # written via a temp name


def test_build_vocab_lower_case_strips_accents(vocabs):
    tokens = vocabs[True].read_text(encoding="utf-8").split("\n")[:-1]
    learned = tokens[7:]
    assert not any(t != t.lower() for t in learned)
    assert not any(unicodedata.category(c) == "Mn"
                   for t in learned for c in unicodedata.normalize("NFD", t))
    assert tokens[:5] == list(vocab.SPECIAL_TOKENS)


def test_build_vocab_lower_case_can_keep_accents(corpora_dir, tmp_path):
    path = tmp_path / "vocab.txt"
    build_vocab(["--corpus-dir", corpora_dir / "es_fortunes", "--vocab-size", 1500,
                 "--lower-case", "--no-strip-accents", "--output", path])
    tokens = path.read_text(encoding="utf-8").split("\n")[:-1]
    assert any(ACCENTED & set(t) for t in tokens)
    assert not any(t != t.lower() for t in tokens[5:])


@pytest.mark.parametrize("lower", [False, True])
def test_tokenizer_matches_official_full_tokenizer(corpora_dir, vocabs, lower):
    """Same ids as a straight port of the official FullTokenizer on every corpus line."""
    tokens = vocabs[lower].read_text(encoding="utf-8").split("\n")[:-1]
    official = official_port.FullTokenizer(tokens, do_lower_case=lower)
    ours = FullTokenizer(vocab.load_vocab(str(vocabs[lower])), do_lower_case=lower)
    lines = corpus_lines(corpora_dir) + EDGE_LINES
    expected = [official.convert_tokens_to_ids(official.tokenize(line)) for line in lines]
    mismatches = [line for line, ids in zip(lines, expected)
                  if ours.tokenize_to_ids(line) != ids]
    assert not mismatches, mismatches[:3]
    # The batched path (build-dataset), from a fresh cache, with the edge lines mixed in.
    batched = FullTokenizer(vocab.load_vocab(str(vocabs[lower])), do_lower_case=lower)
    mixed = []
    for i, line in enumerate(lines):
        mixed.append(line)
        if i % 500 == 0:
            mixed.append(EDGE_LINES[i // 500 % len(EDGE_LINES)])
    got = [ids for i in range(0, len(mixed), 97)
           for ids in batched.tokenize_lines(mixed[i:i + 97])]
    assert got == [ours.tokenize_to_ids(line) for line in mixed]
    assert batched.tokenize_lines([]) == []
    pieces = [p for line in lines for p in ours.tokenize(line)]
    assert "[UNK]" in pieces and any(p.startswith("##") for p in pieces)
    assert len(pieces) > 400_000


@pytest.mark.parametrize("lower", [False, True])
def test_tokenizer_matches_transformers_bert_tokenizer(corpora_dir, vocabs, lower):
    """transformers.BertTokenizer (Rust-backed in v5) gives the same ids on the corpora."""
    import transformers

    vocab_dict = vocab.load_vocab(str(vocabs[lower]))
    theirs = transformers.BertTokenizer(vocab=vocab_dict, do_lower_case=lower)
    ours = FullTokenizer(vocab_dict, do_lower_case=lower)
    lines = corpus_lines(corpora_dir)
    # The Rust tokenizer transformers built from our settings (the slow wrapper adds
    # nothing but time here).
    encodings = theirs.backend_tokenizer.encode_batch_fast(lines, add_special_tokens=False)
    expected = [e.ids for e in encodings]
    assert sum(len(ids) for ids in expected) > 400_000
    assert sum(i == vocab_dict["[UNK]"] for ids in expected for i in ids) < 0.2 * sum(
        len(ids) for ids in expected)  # the vocab really was used
    mismatches = [line for line, ids in zip(lines, expected)
                  if ours.tokenize_to_ids(line) != list(ids)]
    assert not mismatches, mismatches[:3]


def test_load_vocab_duplicate_names_file_and_lines(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\nhola\n[CLS]\nhola\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.txt has a duplicate entry 'hola' on lines 3 and 5"):
        vocab.load_vocab(str(path))


def test_special_tokens_missing_and_official_layout(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("[PAD]\n[UNK]\n[CLS]\nhola\n", encoding="utf-8")
    with pytest.raises(ValueError) as err:
        vocab.check_vocab(str(path))
    assert "[SEP], [MASK]" in str(err.value) and str(path) in str(err.value)
    # The official BERT layout: [PAD] 0, [unused*], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103.
    tokens = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]",
                                                               "[MASK]", "a"]
    path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    ids = vocab.special_token_ids(vocab.check_vocab(str(path), vocab_size=len(tokens)))
    assert ids == {name: tokens.index(tok) for name, tok in
                   zip(("pad", "unk", "cls", "sep", "mask"), vocab.SPECIAL_TOKENS)}
    assert vocab.vocab_fingerprint(str(path)) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_check_vocab_size_mismatch(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(vocab.SPECIAL_TOKENS + ("a", "b")) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="vocab.txt has 7 entries but vocab_size is 30522: "
                                         "set vocab_size=7 in hparams"):
        vocab.check_vocab(str(path), vocab_size=30522)


def test_build_vocab_non_utf8_policy(corpora_dir, tmp_path):
    bad = corpora_dir / "bad_inputs" / "latin1_spanish.txt"
    data = bad.read_bytes()
    # Independent count: in this Latin-1 file every non-ASCII byte is a lone invalid byte.
    expected_bad = sum(b >= 0x80 for b in data)
    first = next(i for i, b in enumerate(data) if b >= 0x80)
    with pytest.raises(SystemExit) as err:
        build_vocab(["--corpus-dir", bad.parent, "--output", tmp_path / "v.txt"])
    msg = str(err.value)
    assert str(bad) in msg and f"{expected_bad} bad byte(s)" in msg
    assert f"byte offset {first}" in msg and "--encoding-errors replace" in msg
    assert not (tmp_path / "v.txt").exists()
    with pytest.raises(SystemExit, match="no readable text files.*non-UTF-8"):
        build_vocab(["--corpus-dir", bad.parent, "--output", tmp_path / "v.txt",
                     "--encoding-errors", "skip-file"])
    build_vocab(["--corpus-dir", bad.parent, "--output", tmp_path / "v.txt", "--vocab-size",
                 200, "--encoding-errors", "replace"])
    assert (tmp_path / "v.txt").read_text(encoding="utf-8").startswith("[PAD]\n[UNK]\n")


def test_corpus_dir_missing_empty_and_binary(tmp_path, capsys):
    with pytest.raises(SystemExit, match=r"corpus dir .*nope does not exist: pass --corpus-dir"):
        corpus.list_corpus_files(str(tmp_path / "nope"))
    with pytest.raises(SystemExit, match="contains no files"):
        corpus.list_corpus_files(str(tmp_path))
    (tmp_path / "blob.bin").write_bytes(b"PK\x03\x04\x00\x00binary\x00")
    (tmp_path / "text.txt").write_text("hola mundo\n", encoding="utf-8")
    scan = corpus.scan_corpus(corpus.list_corpus_files(str(tmp_path)))
    assert scan.files == [str(tmp_path / "text.txt")]
    assert "skipped 1 binary file(s): " + str(tmp_path / "blob.bin") in scan.warnings()[0]
    (tmp_path / "text.txt").write_text("  \n\n\t\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="contain no text"):
        corpus.scan_corpus(corpus.list_corpus_files(str(tmp_path)))


def test_long_lines_are_cut_and_counted(tmp_path):
    words = [f"w{i}" for i in range(400_000)]  # one ~3 MB line, then a normal one
    text = " ".join(words) + "\nfin\n"
    path = tmp_path / "long.txt"
    path.write_text(text, encoding="utf-8")
    reader = corpus.LineReader(max_line_bytes=100_000)
    lines = list(reader.lines(str(path)))
    assert reader.long_lines == 1
    assert max(len(line.encode()) for line in lines) <= 100_000
    assert lines[-1] == "fin"
    assert " ".join(lines[:-1]).split() == words  # cut at spaces: no word lost or split


# ----------------------------------------------------------------------------- --output checks

@pytest.fixture
def tiny_corpus(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("hola mundo\nel perro come pan\nla casa es grande\n" * 20,
                                  encoding="utf-8")
    return folder


@pytest.fixture
def no_learning(monkeypatch):
    """Fails the test if build-vocab reads the corpus or learns: checks must come first."""
    def forbidden(*args, **kwargs):
        raise AssertionError("the corpus was read before the output was checked")
    monkeypatch.setattr(corpus, "list_corpus_files", forbidden)
    monkeypatch.setattr(vocab, "learn_vocab", forbidden)


def _build_vocab_cli(capsys, corpus_dir, output, *extra):
    code = cli.main(["build-vocab", "--corpus-dir", str(corpus_dir), "--vocab-size", "60",
                     "--output", str(output), *extra])
    return code, capsys.readouterr().err


def _one_error_line(err):
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("keras-electra build-vocab: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_build_vocab_missing_output_folder_fails_before_learning(
        tiny_corpus, tmp_path, capsys, no_learning):
    output = tmp_path / "missing_dir" / "vocab.txt"
    code, err = _build_vocab_cli(capsys, tiny_corpus, output)
    line = _one_error_line(err)
    assert code == 2
    assert str(output) in line and "does not exist" in line
    assert f"mkdir -p {tmp_path / 'missing_dir'}" in line
    assert not (tmp_path / "missing_dir").exists()  # no stray folder made either


def test_build_vocab_output_under_a_file_or_at_a_folder_fails_before_learning(
        tiny_corpus, tmp_path, capsys, no_learning):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine\n")
    code, err = _build_vocab_cli(capsys, tiny_corpus, blocker / "vocab.txt")
    assert code == 2 and "is a file, not a folder" in _one_error_line(err)
    assert blocker.read_text() == "mine\n"
    code, err = _build_vocab_cli(capsys, tiny_corpus, tmp_path)
    line = _one_error_line(err)
    assert code == 2 and "is a folder" in line and str(tmp_path / "vocab.txt") in line


def test_build_vocab_unwritable_output_fails_before_learning(tiny_corpus, capsys, no_learning):
    # /proc takes no new files, even for root (so no chmod trick is needed).
    code, err = _build_vocab_cli(capsys, tiny_corpus, "/proc/vocab.txt")
    line = _one_error_line(err)
    assert code == 2 and "/proc/vocab.txt cannot be written" in line
    assert "permissions" in line


def test_build_vocab_keeps_an_existing_vocab_unless_overwrite(tiny_corpus, tmp_path, capsys,
                                                              monkeypatch):
    output = tmp_path / "vocab.txt"
    output.write_text("[PAD]\nmy\nold\nvocab\n", encoding="utf-8")
    with monkeypatch.context() as patch:
        patch.setattr(vocab, "learn_vocab", lambda *a, **k: pytest.fail("learned anyway"))
        code, err = _build_vocab_cli(capsys, tiny_corpus, output)
    line = _one_error_line(err)
    assert code == 2 and f"--output {output} already exists" in line
    assert "--overwrite" in line and "Nothing was changed" in line
    assert output.read_text(encoding="utf-8") == "[PAD]\nmy\nold\nvocab\n"
    code, err = _build_vocab_cli(capsys, tiny_corpus, output, "--overwrite")
    assert code == 0, err
    tokens = output.read_text(encoding="utf-8").split("\n")[:-1]
    assert tokens[:5] == list(vocab.SPECIAL_TOKENS) and "hola" in tokens
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "vocab.txt"]  # no temp


def test_write_vocab_never_replaces_a_file_that_appeared_meanwhile(tmp_path):
    output = tmp_path / "vocab.txt"
    output.write_text("theirs\n", encoding="utf-8")
    with pytest.raises(InputError, match="appeared while the vocab was learned: it was kept"):
        vocab.write_vocab(["[PAD]", "ours"], str(output), overwrite=False)
    assert output.read_text(encoding="utf-8") == "theirs\n"
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.txt"]  # the temp file is gone


def test_build_vocab_remote_output_needs_no_folder_but_keeps_existing(tiny_corpus, capsys):
    # ram:// behaves like gs://: no real folders; a write creates the prefix.
    output = f"ram://vocab-test-{uuid.uuid4().hex[:8]}/run1/vocab.txt"
    code, err = _build_vocab_cli(capsys, tiny_corpus, output)
    assert code == 0, err
    with tf.io.gfile.GFile(output) as f:
        first = f.read()
    assert first.startswith("[PAD]\n[UNK]\n")
    code, err = _build_vocab_cli(capsys, tiny_corpus, output, "--reserved", "[unused0]")
    assert code == 2 and "already exists" in _one_error_line(err)
    with tf.io.gfile.GFile(output) as f:
        assert f.read() == first
    assert tf.io.gfile.listdir(output.rpartition("/")[0]) == ["vocab.txt"]


@pytest.mark.parametrize("extra,message", [
    (["--vocab-size", "5"], "--vocab-size 5 leaves no room for word pieces"),
    (["--reserved", "[MASK]"], "--reserved repeats [MASK]"),
])
def test_build_vocab_bad_flags_one_line(tiny_corpus, tmp_path, capsys, no_learning, extra,
                                        message):
    code = cli.main(["build-vocab", "--corpus-dir", str(tiny_corpus), "--output",
                     str(tmp_path / "vocab.txt"), *extra])
    assert code == 2 and message in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "vocab.txt").exists()
