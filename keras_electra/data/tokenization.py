"""BERT tokenization giving exactly the official `FullTokenizer` ids, memoized.

The official builder tokenizes with `model/tokenization.py`: text cleaning (drop NUL,
U+FFFD and control characters), spaces around CJK characters, whitespace split, then
per whitespace token: lower-casing, accent stripping, punctuation split, and greedy
longest-match-first WordPiece ("##" continuations, `[UNK]` for a word with no
segmentation or longer than 200 characters).

After the whitespace split every step is a pure function of one token, so we run the
official steps once per distinct token and cache the ids (natural text is Zipfian: a
few percent of tokens are new). Only the whole-line steps run per line, with
precomputed character classes built from the same `unicodedata` predicates. The ids
are the official ones by construction, and the tests check them against a straight
port of the official code and against `transformers.BertTokenizerLegacy` on every line
of the shared corpora. Measured speed: see `benchmarks/build_dataset.py`.

Why not the libraries the issue suggested:
- tensorflow-text `BertTokenizer(lower_case=True)` case-folds (`case_fold_utf8`:
  "ß" -> "ss") and always strips accents when lower-casing; the official code uses
  `str.lower()` and can keep accents, so the ids differ on such text.
- Hugging Face `tokenizers` (`BertNormalizer` + `BertPreTokenizer` + `WordPiece`) is a
  port of the same algorithm but measured only ~3x faster than the pure-Python
  official code here (offset tracking per character), less than this cache gives.
  We do use it to *learn* the vocab (`vocab.py`), where exact parity is not needed.

Accents: the official `BasicTokenizer` strips accents only inside its lower-case
branch, so `--no-lower-case` always keeps accents whatever `--strip-accents` says.
`effective_strip_accents` applies that rule everywhere in this package.
"""

import re
from itertools import chain
import unicodedata

# Official `WordpieceTokenizer(max_input_chars_per_word=200)`.
MAX_INPUT_CHARS_PER_WORD = 200
UNK_TOKEN = "[UNK]"
_MAX_CACHE = 2_000_000  # distinct tokens kept; cleared when full (bounded memory)



def _dropped(cp):
    """Whether the official `_clean_text` drops this code point."""
    return cp == 0xFFFD or (unicodedata.category(chr(cp))[0] == "C"
                            and chr(cp) not in "\t\n\r")


class _CleanTable(dict):
    """`str.translate` table for the official `_clean_text`, filled per char on first sight.

    Drops NUL, U+FFFD and category C* except \t\n\r. (The whitespace `_clean_text`
    maps to " " needs no mapping: `str.split()` splits on it anyway.)
    """

    def __missing__(self, cp):
        self[cp] = None if _dropped(cp) else cp
        return self[cp]


_CLEAN = _CleanTable()
_ASCII_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class _TokenCache(dict):
    """whitespace token -> ids, computed by the official per-token steps on a miss."""

    def __init__(self, compute):
        super().__init__()
        self._compute = compute

    def __missing__(self, token):
        ids = self[token] = self._compute(token)
        return ids

# A run of non-punctuation or one punctuation char, for ASCII tokens (official split).
_ASCII_PUNC_SPLIT = re.compile(r"[^!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")


def effective_strip_accents(do_lower_case, strip_accents):
    """Whether accents are really stripped: only when lower-casing (official rule).

    `strip_accents=None` means the official default (True).
    """
    return bool(do_lower_case) and (strip_accents is None or bool(strip_accents))


class FullTokenizer:
    """The official `FullTokenizer` (same ids), with per-token memoization.

    Args:
        vocab: dict token -> id (see `vocab.load_vocab`); must contain "[UNK]".
        do_lower_case: bool. Lower-case each token (official `do_lower_case`).
        strip_accents: bool or None. Official `strip_accents`; effective only when
            lower-casing.

    Example:
        >>> tok = FullTokenizer({"[UNK]": 0, "hi": 1, "!": 2}, do_lower_case=True)
        >>> tok.tokenize_to_ids("Hi!")
        [1, 2]
    """

    def __init__(self, vocab, do_lower_case=True, strip_accents=None):
        if UNK_TOKEN not in vocab:
            raise ValueError(f"the vocab has no {UNK_TOKEN} entry; WordPiece needs it for "
                             "words it cannot segment")
        self.vocab = vocab
        self.do_lower_case = bool(do_lower_case)
        self.strip_accents = effective_strip_accents(do_lower_case, strip_accents)
        self._cache = _TokenCache(self._token_ids)
        self._words = {}  # word (after the punctuation split) -> its WordPiece ids
        # Longest vocab entries (in chars), to skip lookups that cannot match: any entry
        # for a word's first piece, "##" entries (less the "##") for the others.
        self._max_first = max(map(len, vocab))
        self._max_next = max((len(t) - 2 for t in vocab if t.startswith("##")), default=0)
        self._inverse = None

    def tokenize_to_ids(self, line):
        """Ids of `line` (official `convert_tokens_to_ids(tokenize(line))`)."""
        if not line.isascii():
            line = line.translate(_CLEAN)
        elif _ASCII_CONTROL.search(line):
            line = line.translate(_CLEAN)
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
            self._words.clear()
        # All in C but for tokens seen for the first time (`_TokenCache.__missing__`).
        return list(chain.from_iterable(map(self._cache.__getitem__, line.split())))

    def tokenize_lines(self, lines):
        """`[tokenize_to_ids(line) for line in lines]`, faster on batches of lines.

        The cleaning check runs once over the whole batch (C-level `str.isprintable`:
        a printable text has no category C* char, so only U+FFFD remains to check): lines
        that need no cleaning, nearly all in practice, go straight to the cache.
        """
        if len(self._cache) >= _MAX_CACHE:
            self._cache.clear()
            self._words.clear()
        text = " ".join(lines)
        if not text.isprintable() or "\ufffd" in text:
            lines = [line if line.isprintable() and "\ufffd" not in line
                     else line.translate(_CLEAN) for line in lines]
        get, flat = self._cache.__getitem__, chain.from_iterable
        return [list(flat(map(get, line.split()))) for line in lines]

    def tokenize(self, line):
        """Word pieces of `line` as strings (official `tokenize`)."""
        if self._inverse is None:
            self._inverse = {i: t for t, i in self.vocab.items()}
        return [self._inverse[i] for i in self.tokenize_to_ids(line)]

    def _token_ids(self, token):
        """The official steps after the whitespace split, for one whitespace token."""
        if token.isascii():  # no CJK, no accents, no whitespace: the punctuation split
            words = _ASCII_PUNC_SPLIT.findall(token.lower() if self.do_lower_case else token)
        else:
            words = []
            for part in _space_cjk(token).split():
                if self.do_lower_case:
                    part = part.lower()
                    if self.strip_accents:
                        part = _strip_accents(part)
                words.extend(_split_on_punc(part))
            words = " ".join(words).split()
        ids = []
        cache = self._words
        for word in words:
            pieces = cache.get(word)
            if pieces is None:
                pieces = cache[word] = self._wordpiece(word)
            ids.extend(pieces)
        return tuple(ids)

    def _wordpiece(self, word):
        """Greedy longest-match-first WordPiece (official `WordpieceTokenizer`)."""
        vocab = self.vocab
        if len(word) > MAX_INPUT_CHARS_PER_WORD:
            return [vocab[UNK_TOKEN]]
        pieces, start, length = [], 0, len(word)
        while start < length:
            # (no vocab entry is longer: the official loop finds no match above this)
            end = min(length, start + (self._max_next if start else self._max_first))
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    pieces.append(vocab[piece])
                    break
                end -= 1
            else:
                return [vocab[UNK_TOKEN]]
            start = end
        return pieces


def _is_chinese_char(cp):
    """Official `_is_chinese_char`: the CJK Unified Ideographs blocks."""
    return ((0x4E00 <= cp <= 0x9FFF) or (0x3400 <= cp <= 0x4DBF) or
            (0x20000 <= cp <= 0x2A6DF) or (0x2A700 <= cp <= 0x2B73F) or
            (0x2B740 <= cp <= 0x2B81F) or (0x2B820 <= cp <= 0x2CEAF) or
            (0xF900 <= cp <= 0xFAFF) or (0x2F800 <= cp <= 0x2FA1F))


def _space_cjk(token):
    if token.isascii():
        return token
    return "".join(f" {c} " if _is_chinese_char(ord(c)) else c for c in token)


def _strip_accents(text):
    """Official `_run_strip_accents`: NFD, then drop nonspacing marks (Mn)."""
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFD", text)
                   if unicodedata.category(c) != "Mn")


def _is_punctuation(char):
    """Official `_is_punctuation`: all non-alphanumeric ASCII, and Unicode category P*."""
    cp = ord(char)
    if (33 <= cp <= 47) or (58 <= cp <= 64) or (91 <= cp <= 96) or (123 <= cp <= 126):
        return True
    return unicodedata.category(char).startswith("P")


def _split_on_punc(text):
    """Official `_run_split_on_punc`: each punctuation char becomes its own word."""
    if text.isascii():
        return _ASCII_PUNC_SPLIT.findall(text)
    output, start_new_word = [], True
    for char in text:
        if _is_punctuation(char):
            output.append(char)
            start_new_word = True
        else:
            if start_new_word:
                output.append("")
            start_new_word = False
            output[-1] += char
    return output
