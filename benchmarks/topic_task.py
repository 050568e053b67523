"""A labelled task made from the bundled Spanish fortunes: topic = source file.

Each fortune is one blank-line block of `../shared/corpora/es_fortunes/TOPIC.txt`.
The label would leak through the attribution lines ("-- Ley de Murphy.",
"-- Nietzsche."), so every line that starts with white space (the indented
attributions and their continuation lines) is removed; the text is the
fortune's own words, joined by spaces.

The split, stated exactly:
- texts that occur under more than one topic are dropped (their label is ambiguous),
  and a text repeated within one topic is kept once;
- a text is in `dev` when `md5(text) % 4 == 0` (about 25%), otherwise in `train`:
  fixed, independent of the seed and of the order of the files;
- the pretraining corpus is all 24 topic files with the *dev* fortunes removed
  (blocks whose cleaned text is a dev text), attributions kept: no model sees a dev
  text before it is evaluated on it; unlabelled train texts are part of pretraining,
  as in the paper's setup of pretraining on unlabelled text then fine-tuning.

    from topic_task import topic_task
    task = topic_task(corpus_dir, topics=DEFAULT_TOPICS)
    task["train"], task["dev"]  # lists of (text, label)
"""

import hashlib
from pathlib import Path

DEFAULT_TOPICS = ("amistad", "arte", "ciencia", "familia", "informatica", "poder")


def fortune_blocks(path):
    """The blank-line blocks of one fortune file, as lists of lines."""
    blocks, block = [], []
    for line in Path(path).read_text(encoding="utf-8").split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            blocks.append(block)
            block = []
    if block:
        blocks.append(block)
    return blocks


def fortune_text(block):
    """The fortune's own words: lines that start with white space are attributions."""
    return " ".join(line.strip() for line in block if not line[:1].isspace()).strip()


def is_dev(text):
    return int(hashlib.md5(text.encode("utf-8")).hexdigest(), 16) % 4 == 0


def topic_task(corpus_dir, topics=DEFAULT_TOPICS):
    """{"train": [(text, topic)], "dev": [(text, topic)], "topics": [...], "dropped": n}."""
    corpus_dir = Path(corpus_dir)
    seen = {}  # text -> set of topics
    for topic in topics:
        path = corpus_dir / f"{topic}.txt"
        if not path.exists():
            raise SystemExit(f"no topic file {path}: choose --topics among "
                             f"{sorted(p.stem for p in corpus_dir.glob('*.txt'))}")
        for block in fortune_blocks(path):
            text = fortune_text(block)
            if text:
                seen.setdefault(text, set()).add(topic)
    rows = sorted((text, next(iter(t))) for text, t in seen.items() if len(t) == 1)
    return {"train": [r for r in rows if not is_dev(r[0])],
            "dev": [r for r in rows if is_dev(r[0])],
            "topics": sorted(topics),
            "dropped": sum(1 for t in seen.values() if len(t) > 1)}


def write_pretraining_corpus(corpus_dir, out_dir, dev_texts):
    """Every fortune file of `corpus_dir` into `out_dir`, without the dev fortunes.

    Returns the number of blocks removed."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev_texts, removed = set(dev_texts), 0
    for path in sorted(Path(corpus_dir).glob("*.txt")):
        kept = []
        for block in fortune_blocks(path):
            if fortune_text(block) in dev_texts:
                removed += 1
            else:
                kept.append("\n".join(block))
        (out_dir / path.name).write_text("\n\n".join(kept) + "\n", encoding="utf-8")
    return removed


def write_tsv(rows, path):
    """A GLUE-style TSV with a header: text<TAB>label."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for text, label in rows:
            f.write(f"{text.replace(chr(9), ' ')}\t{label}\n")
