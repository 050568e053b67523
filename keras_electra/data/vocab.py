"""`keras-electra build-vocab`: learn a WordPiece `vocab.txt` from a text corpus; vocab checks.

The learner is Hugging Face `tokenizers`' WordPiece trainer behind BERT normalization
and pre-tokenization (the same cleaning, casing, accent and punctuation rules as the
official `FullTokenizer`). Chosen for speed: on 2 MB of the shared corpora it trains a
vocab in ~1-2 s where keras-hub's `compute_word_piece_vocabulary` (tensorflow-text's
learner) took minutes (see `benchmarks/build_dataset.py --vocab-learners`). It counts
words while the corpus streams through, so memory follows the number of distinct words,
not the corpus size.

Our vocab.txt starts with `SPECIAL_TOKENS` (ids 0..4), then `--reserved` extras, then the
learned pieces. Official BERT vocabs put the special tokens elsewhere ([PAD] 0, [UNK]
100, [CLS] 101, [SEP] 102, [MASK] 103); every reader here looks them up by name.
"""

import hashlib
import os
import posixpath
import random
import uuid

import tensorflow as tf

from keras_electra.data import corpus as corpus_lib
from keras_electra.data.tokenization import FullTokenizer, effective_strip_accents
from keras_electra.errors import InputError

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_SPECIAL_KEYS = dict(zip(("pad", "unk", "cls", "sep", "mask"), SPECIAL_TOKENS))
_COVERAGE_SAMPLE_LINES = 5000


# ----------------------------------------------------------------------------- reading

def load_vocab(path):
    """token -> id, one token per line, id = line index (official `load_vocab`).

    Raises ValueError naming the file and both line numbers on a duplicate entry:
    the official loader silently keeps the last id, so the first one can never be
    produced and the embedding row is wasted or, worse, ids shift.
    """
    if not tf.io.gfile.exists(path):
        raise ValueError(f"vocab file {path} does not exist: build one with "
                         "`keras-electra build-vocab` or pass the vocab.txt of a checkpoint")
    vocab = {}
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"vocab file {path} is not UTF-8 (bad byte at offset {e.start})")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the final newline
    for index, line in enumerate(lines):
        token = line.strip()
        if token in vocab:
            raise ValueError(f"vocab file {path} has a duplicate entry {token!r} on lines "
                             f"{vocab[token] + 1} and {index + 1}: remove one (ids are line "
                             "numbers, so rebuild the records if you change the file)")
        vocab[token] = index
    if not vocab:
        raise ValueError(f"vocab file {path} is empty")
    return vocab


def special_token_ids(vocab, path="the vocab"):
    """{'pad','unk','cls','sep','mask'} -> id; ValueError listing what is missing."""
    missing = [tok for tok in SPECIAL_TOKENS if tok not in vocab]
    if missing:
        raise ValueError(f"{path} is missing required special token(s) {', '.join(missing)}: "
                         "ELECTRA needs all of " + ", ".join(SPECIAL_TOKENS) +
                         " (rebuild it with `keras-electra build-vocab`, or add the "
                         "missing tokens as new lines)")
    return {key: vocab[tok] for key, tok in _SPECIAL_KEYS.items()}


def check_vocab(path, vocab_size=None):
    """Loads `path` and checks special tokens and, if given, `vocab_size`; returns the vocab."""
    vocab = load_vocab(path)
    special_token_ids(vocab, path)
    if vocab_size is not None and len(vocab) != vocab_size:
        name = os.path.basename(path)
        raise ValueError(f"{name} has {len(vocab)} entries but vocab_size is {vocab_size}: "
                         f"set vocab_size={len(vocab)} in hparams (file: {path})")
    return vocab


def vocab_fingerprint(path):
    """sha256 of the vocab file's bytes: ties records and checkpoints to one vocab."""
    digest = hashlib.sha256()
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def looks_cased(vocab):
    """True when many learned pieces contain upper-case letters (a cased vocab)."""
    words = [t for t in vocab if not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in words if t.lower() != t)
    return bool(words) and upper / len(words) > 0.05


# ----------------------------------------------------------------------------- learning

def learn_vocab(line_batches, vocab_size, do_lower_case, strip_accents, reserved=(),
                min_frequency=0, limit_alphabet=1000):
    """Trains WordPiece on batches of lines; returns the vocab as a list of tokens (id order)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True,
        strip_accents=effective_strip_accents(do_lower_case, strip_accents),
        lowercase=bool(do_lower_case))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, limit_alphabet=limit_alphabet,
        special_tokens=list(SPECIAL_TOKENS) + list(reserved),
        continuing_subword_prefix="##", show_progress=False)
    tokenizer.train_from_iterator(line_batches, trainer=trainer)
    by_id = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    return [token for token, _ in by_id]


def coverage(vocab, lines, do_lower_case, strip_accents):
    """[UNK] rate and mean pieces per word of `lines` under the official tokenizer."""
    tokenizer = FullTokenizer(vocab, do_lower_case, strip_accents)
    words = pieces = unks = 0
    for line in lines:
        for piece in tokenizer.tokenize(line):
            pieces += 1
            unks += piece == "[UNK]"
            words += not piece.startswith("##")  # a word = its first piece
    return {"lines": len(lines), "words": words, "pieces": pieces,
            "unk_rate": unks / max(pieces, 1), "pieces_per_word": pieces / max(words, 1)}


def write_vocab(tokens, path, overwrite=True):
    """Writes one token per line to a temp name, then renames: never a half-written vocab.

    With overwrite=False the rename itself refuses an existing `path` (one that
    appeared after `check_output`), so a vocab the user has is never replaced.
    """
    tmp = _temp_name(path)
    try:
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write("".join(t + "\n" for t in tokens))
        tf.io.gfile.rename(tmp, path, overwrite=overwrite)
    except tf.errors.AlreadyExistsError:
        raise InputError(f"{path} appeared while the vocab was learned: it was kept; pass "
                         "--overwrite to replace it, or choose another --output") from None
    finally:
        if tf.io.gfile.exists(tmp):
            tf.io.gfile.remove(tmp)


def _temp_name(path):
    """A hidden sibling of `path`. Not `path` + suffix: some file systems (ram://) would
    then report `path` itself as existing while the temp file is there."""
    folder, name = posixpath.split(path)
    return posixpath.join(folder, f".{name}.tmp-{uuid.uuid4().hex[:8]}")


def check_output(path, overwrite=False):
    """Before any learning: can `path` take a new vocab.txt? Raises InputError if not.

    A local parent folder must exist (a typo should not cost a whole learning run
    or leave stray folders). Object stores (gs://...) have no real folders, so
    there the probe below, written through `tf.io.gfile`, is the check: it finds a
    missing bucket or a missing permission. An existing vocab is replaced only
    with `overwrite`: records and checkpoints are tied to its exact bytes.
    """
    parent = posixpath.dirname(path) or "."
    remote = "://" in path
    if tf.io.gfile.isdir(path):
        raise InputError(f"--output {path} is a folder: pass the file to write, "
                         f"e.g. --output {posixpath.join(path, 'vocab.txt')}")
    if tf.io.gfile.exists(path) and not overwrite:
        raise InputError(f"--output {path} already exists: pass --overwrite to replace it "
                         "(records and checkpoints built with it will no longer match), "
                         "or choose another --output. Nothing was changed.")
    if not remote and tf.io.gfile.exists(parent) and not tf.io.gfile.isdir(parent):
        raise InputError(f"--output {path}: {parent} is a file, not a folder: choose "
                         "another --output. Nothing was learned yet.")
    if not remote and not tf.io.gfile.isdir(parent):
        raise InputError(f"--output {path}: the folder {parent} does not exist: create it "
                         f"first (mkdir -p {parent}) or choose another --output. Nothing "
                         "was learned yet.")
    probe = _temp_name(path)
    try:
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        raise InputError(f"--output {path} cannot be written ({type(e).__name__}: "
                         f"{getattr(e, 'message', e)}): check the folder's permissions or "
                         "the bucket, or choose another --output. Nothing was learned "
                         "yet.") from None


# ----------------------------------------------------------------------------- CLI

def add_arguments(parser):
    parser.add_argument("--corpus-dir", required=True,
                        help="Folder of UTF-8 text files (one sentence per line).")
    parser.add_argument("--vocab-size", type=int, default=32000,
                        help="Vocab entries including special tokens (default 32000, as the "
                             "historic-English ELECTRA run).")
    parser.add_argument("--lower-case", "--do-lower-case", dest="do_lower_case",
                        action="store_true", default=True, help="Lower-case text (default).")
    parser.add_argument("--no-lower-case", dest="do_lower_case", action="store_false",
                        help="Keep case (a cased vocab; keeps accents too).")
    parser.add_argument("--strip-accents", "--do-strip-accents", dest="strip_accents",
                        action="store_true", default=None,
                        help="Strip accents (default when lower-casing). As in the official "
                             "tokenizer, accents are only ever stripped when lower-casing.")
    parser.add_argument("--no-strip-accents", dest="strip_accents", action="store_false",
                        help="Keep accents (e.g. German, Spanish), cased or lower-cased.")
    parser.add_argument("--output", default="vocab.txt",
                        help="Where to write vocab.txt (local or gs://). Its folder must "
                             "exist; an existing file is kept unless --overwrite.")
    parser.add_argument("--overwrite", action="store_true",
                        help="Replace an existing --output file (atomically).")
    parser.add_argument("--reserved", action="append", default=[], metavar="TOKEN",
                        help="Extra tokens placed right after the special tokens (repeat the "
                             "flag or separate with commas), e.g. --reserved [unused0],[unused1].")
    parser.add_argument("--min-frequency", type=int, default=0,
                        help="Drop merges seen fewer times than this.")
    parser.add_argument("--limit-alphabet", type=int, default=1000,
                        help="Keep at most this many distinct characters (BERT's setting).")
    corpus_lib.add_reading_arguments(parser)


def _check_args(args):
    """Everything wrong with the flags or the output, before the corpus is read.

    Returns the --reserved tokens as a list.
    """
    if args.vocab_size <= len(SPECIAL_TOKENS):
        raise InputError(f"--vocab-size {args.vocab_size} leaves no room for word pieces: "
                         f"pass more than {len(SPECIAL_TOKENS)} (e.g. 32000)")
    reserved = [t for flag in args.reserved for t in flag.split(",") if t]
    clash = sorted(set(reserved) & set(SPECIAL_TOKENS)) or sorted(
        {t for t in reserved if reserved.count(t) > 1})
    if clash:
        raise InputError(f"--reserved repeats {', '.join(clash)}: each entry must be "
                         "new (the special tokens are always added)")
    check_output(args.output, args.overwrite)
    return reserved


def run(args):
    from tqdm import tqdm

    reserved = _check_args(args)
    if args.strip_accents and not args.do_lower_case:
        print("note: --strip-accents has no effect with --no-lower-case (the official "
              "tokenizer strips accents only when lower-casing)")
    files = corpus_lib.list_corpus_files(args.corpus_dir)
    scan = corpus_lib.scan_corpus(files, args.encoding_errors)
    for line in scan.warnings():
        print(line)

    reader = corpus_lib.LineReader(args.encoding_errors, args.max_line_bytes)
    rng = random.Random(0)
    sample, seen = [], 0  # reservoir sample of non-empty lines for the coverage report
    bar = tqdm(total=scan.total_bytes, unit="B", unit_scale=True, desc="learning vocab")

    def batches():
        nonlocal seen
        for path in scan.files:
            batch, before = [], reader.bytes_read
            for line in reader.lines(path):
                batch.append(line)
                if line.strip():
                    seen += 1
                    if len(sample) < _COVERAGE_SAMPLE_LINES:
                        sample.append(line)
                    elif rng.random() < _COVERAGE_SAMPLE_LINES / seen:
                        sample[rng.randrange(_COVERAGE_SAMPLE_LINES)] = line
                if len(batch) == 1000:
                    yield batch
                    batch = []
                    bar.update(reader.bytes_read - before)
                    before = reader.bytes_read
            if batch:
                yield batch
            bar.update(reader.bytes_read - before)

    tokens = learn_vocab(batches(), args.vocab_size, args.do_lower_case, args.strip_accents,
                         reserved, args.min_frequency, args.limit_alphabet)
    bar.close()
    if reader.long_lines:
        print(f"warning: {reader.long_lines} line(s) longer than {args.max_line_bytes} bytes "
              "were cut into pieces")
    write_vocab(tokens, args.output, overwrite=args.overwrite)
    vocab = {t: i for i, t in enumerate(tokens)}
    stats = coverage(vocab, sample, args.do_lower_case, args.strip_accents)
    size_note = ("" if len(tokens) == args.vocab_size else
                 f" (asked for {args.vocab_size}: the corpus has no more pieces to learn; "
                 f"set vocab_size={len(tokens)} in hparams)")
    print(f"wrote {args.output}: {len(tokens)} entries{size_note}; lower_case="
          f"{args.do_lower_case}, strip_accents="
          f"{effective_strip_accents(args.do_lower_case, args.strip_accents)}")
    print(f"coverage on {stats['lines']} sampled lines ({stats['words']} words): "
          f"[UNK] rate {100 * stats['unk_rate']:.2f}% of pieces, "
          f"{stats['pieces_per_word']:.2f} pieces per word")
    return 0
