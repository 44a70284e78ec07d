"""Registry, split sizes, determinism, ids, and the split conventions of SOURCES.md."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import pytest

from w4s_ray.benchmarks import BENCHMARKS, Item, get_benchmark, list_benchmarks
from w4s_ray.errors import DataError

ELEVEN = ["mgsm", "gsm8k", "gsm_hard", "gsm_plus", "svamp", "math", "drop", "mmlu_pro", "gpqa",
          "humaneval", "mbpp"]
SIZES = {"mgsm": (128, 800), "gsm8k": (264, 1055), "gsm_hard": (128, 500),
         "gsm_plus": (128, 800), "svamp": (128, 800), "math": (119, 486), "drop": (128, 800),
         "mmlu_pro": (128, 800), "gpqa": (32, 166), "humaneval": (33, 131), "mbpp": (86, 341)}
KINDS = {"mgsm": "math", "gsm8k": "math", "gsm_hard": "math", "gsm_plus": "math",
         "svamp": "math", "math": "math", "drop": "reading", "mmlu_pro": "multiple_choice",
         "gpqa": "multiple_choice", "humaneval": "code", "mbpp": "code"}


def test_the_w4s_eleven_are_registered_in_the_papers_order():
    # Other benchmarks may be registered; the paper's eleven keep their order among them.
    assert [n for n in list_benchmarks() if n in ELEVEN] == ELEVEN


@pytest.mark.parametrize("name", list_benchmarks())
def test_every_registered_benchmark_builds_its_declared_splits(name, data_dir):
    bm = get_benchmark(name, data_dir)
    assert {s: len(bm.load(s)) for s in ("valid", "test")} == type(bm).split_sizes
    assert bm.seed_workflows() and bm.task_description.strip()


@pytest.mark.parametrize("name", ELEVEN)
def test_split_sizes_kind_and_items(name, data_dir):
    bm = get_benchmark(name, data_dir)
    valid, test = bm.load("valid"), bm.load("test")
    assert (len(valid), len(test)) == SIZES[name]
    assert bm.kind == KINDS[name]
    ids = [it.id for it in valid + test]
    assert len(ids) == len(set(ids)), "ids must be unique across both splits"
    for it in valid + test:
        assert isinstance(it, Item) and it.id and it.question.strip() and it.answer.strip()
    if bm.kind == "multiple_choice":
        for it in valid + test:
            n = len(it.meta["choices"])
            assert it.answer in "ABCDEFGHIJ"[:n]
            assert f"({it.answer}) " in it.question
    if bm.kind == "code":
        for it in valid + test:
            assert it.meta["entry_point"] and it.meta["reference_solution"]
            assert f"def {it.meta['entry_point']}" in it.question
    if name == "drop":
        assert all(it.meta["golds"] == it.answer.split("|") for it in valid + test)
    assert bm.task_description.strip() and bm.answer_format.strip()


def test_load_is_deterministic_and_cached(data_dir):
    bm = get_benchmark("drop", data_dir)
    a, b = bm.load("valid"), get_benchmark("drop", str(data_dir)).load("valid")
    assert [x.id for x in a] == [x.id for x in b]
    assert a[0] is b[0], "a second load must come from the per-process cache"
    a.pop()  # load returns a fresh list: callers cannot shrink the cached split
    assert len(bm.load("valid")) == 128


def test_splits_identical_in_a_fresh_process(data_dir):
    code = ("from w4s_ray.benchmarks import get_benchmark as g;"
            "print([[i.id for i in g(n).load(s)][:50] for n in ('mgsm','gsm_plus','mmlu_pro',"
            "'gpqa','svamp') for s in ('valid','test')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={"W4S_DATA_DIR": str(data_dir), "PATH": "/usr/bin"})
    here = [[i.id for i in get_benchmark(n, data_dir).load(s)][:50]
            for n in ("mgsm", "gsm_plus", "mmlu_pro", "gpqa", "svamp") for s in ("valid", "test")]
    assert out.stdout.strip() == str(here)


def test_unknown_benchmark_and_split_are_data_errors(data_dir):
    with pytest.raises(DataError, match="unknown benchmark 'nope'.*gsm8k"):
        get_benchmark("nope", data_dir)
    with pytest.raises(DataError, match="unknown split 'training'.*valid, test, extra, train"):
        get_benchmark("svamp", data_dir).load("training")


def test_aliases_and_case(data_dir):
    assert get_benchmark("GSMHard", data_dir).name == "gsm_hard"
    assert get_benchmark("mmlupro", data_dir).name == "mmlu_pro"


def test_missing_data_dir_is_one_line_data_error(tmp_path):
    with pytest.raises(DataError) as err:
        get_benchmark("svamp", tmp_path / "absent").load("valid")
    msg = str(err.value)
    assert "absent" in msg and "w4s data fetch" in msg and "\n" not in msg


def test_default_data_dir_comes_from_env(monkeypatch, data_dir):
    monkeypatch.setenv("W4S_DATA_DIR", str(data_dir))
    assert get_benchmark("svamp").data_dir == data_dir.resolve()


# --- the split conventions, re-derived independently with the global RNG as ADAS/W4S do ------

def _adas_shuffle(rows):
    random.seed(0)
    random.shuffle(rows)
    return rows


def test_svamp_is_adas_seed0_split(data_dir):
    rows = json.loads((data_dir / "svamp/SVAMP.json").read_text())
    rows = _adas_shuffle(rows)
    bm = get_benchmark("svamp", data_dir)
    assert [it.id for it in bm.load("valid")] == [f"svamp/{r['ID']}" for r in rows[:128]]
    assert [it.id for it in bm.load("test")] == [f"svamp/{r['ID']}" for r in rows[128:928]]
    first = rows[0]
    assert bm.load("valid")[0].question == ("Solve this math problem:\n" + first["Body"] + "\n"
                                            + first["Question"])


def test_drop_drops_first_and_last_then_shuffles(data_dir):
    with gzip.open(data_dir / "drop/drop_v0_dev.jsonl.gz", "rt") as fh:
        n = sum(1 for _ in fh)
    idx = _adas_shuffle(list(range(n))[1:-1])
    bm = get_benchmark("drop", data_dir)
    assert [it.id for it in bm.load("valid")] == [f"drop/{i}" for i in idx[:128]]
    assert [it.id for it in bm.load("test")] == [f"drop/{i}" for i in idx[128:928]]
    assert bm.load("valid")[0].question.startswith("You will be asked to read a passage")
    assert bm.load("valid")[0].question.rstrip().endswith("Answer:")


def test_mgsm_concatenates_languages_in_adas_order(data_dir):
    rows = []
    for lang in ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh"):
        lines = (data_dir / f"mgsm/mgsm_{lang}.tsv").read_text(encoding="utf-8").splitlines()
        rows += [f"mgsm/{lang}/{i}" for i, line in enumerate(lines) if line.strip()]
    assert len(rows) == 2750
    rows = _adas_shuffle(rows)
    assert [it.id for it in get_benchmark("mgsm", data_dir).load("valid")] == rows[:128]


def test_gsm_hard_is_w4s_split(data_dir):
    n = sum(1 for _ in open(data_dir / "gsm_hard/gsmhardv2.jsonl"))
    idx = _adas_shuffle(list(range(n)))
    bm = get_benchmark("gsm_hard", data_dir)
    assert [it.id for it in bm.load("test")] == [f"gsm_hard/{i}" for i in idx[128:628]]
    assert bm.load("valid")[0].question.startswith("Solve this math problem:\n")


def test_gsm_plus_excludes_critical_thinking_then_splits(data_dir):
    with gzip.open(data_dir / "gsm_plus/gsmplus_testmini.jsonl.gz", "rt") as fh:
        rows = [json.loads(line) for line in fh]
    kept = [i for i, r in enumerate(rows) if r["perturbation_type"] != "critical thinking"]
    assert len(kept) == 2100
    kept = _adas_shuffle(kept)
    bm = get_benchmark("gsm_plus", data_dir)
    assert [it.id for it in bm.load("valid")] == [f"gsm_plus/{i}" for i in kept[:128]]
    assert all(it.answer != "None" for it in bm.load("valid") + bm.load("test"))


def test_gpqa_choice_shuffle_matches_adas(data_dir):
    """ADAS: random.seed(0), then per row in file order shuffle [I1, I2, I3, Correct]."""
    import csv
    import io
    import zipfile

    raw = zipfile.ZipFile(data_dir / "gpqa/dataset.zip").read(
        "dataset/gpqa_diamond.csv", pwd=b"deserted-untie-orchid").decode()
    rows = list(csv.DictReader(io.StringIO(raw)))
    random.seed(0)
    golds, firsts = [], []
    for row in rows:
        opts = [row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"],
                row["Correct Answer"]]
        random.shuffle(opts)
        golds.append("ABCD"[opts.index(row["Correct Answer"])])
        firsts.append(opts[0])
    bm = get_benchmark("gpqa", data_dir)
    items = bm.load("valid") + bm.load("test")
    assert [it.answer for it in items] == golds  # compared in memory, never printed
    assert [it.meta["choices"][0] for it in items] == firsts
    assert [it.id for it in bm.load("valid")] == [f"gpqa/{i}" for i in range(32)]
    assert items[0].question.startswith("What is the correct answer to this question:")


def test_mmlu_pro_is_seed0_shuffle_of_test(data_dir):
    with gzip.open(data_dir / "mmlu_pro/mmlu_pro_test_data.json.gz", "rt") as fh:
        rows = json.load(fh)
    rows = _adas_shuffle(rows)
    bm = get_benchmark("mmlu_pro", data_dir)
    assert [it.id for it in bm.load("test")][:100] == [
        f"mmlu_pro/{r['question_id']}" for r in rows[128:228]]
    assert max(len(it.meta["choices"]) for it in bm.load("test")) == 10


def test_aflow_files_are_used_as_is(data_dir):
    bm = get_benchmark("humaneval", data_dir)
    ids = [it.id for it in bm.load("valid") + bm.load("test")]
    assert sorted(ids, key=lambda s: int(s.split("/")[1])) == [f"HumanEval/{i}" for i in range(164)]
    gsm = get_benchmark("gsm8k", data_dir)
    assert {it.id for it in gsm.load("valid") + gsm.load("test")} == {
        f"gsm8k-test-{i}" for i in range(1319)}


def test_registry_classes_declare_their_files_in_the_manifest():
    from w4s_ray.benchmarks import data as D

    paths = {e.path for e in D.manifest()}
    for cls in BENCHMARKS.values():
        assert set(cls.files) <= paths


def test_a_new_numeric_benchmark_is_its_module_and_manifest_entry(tmp_path, monkeypatch):
    """What docs/ARCHITECTURE.md shows: a numeric benchmark defined in one module, with its
    data file in the manifest, is listed, resolved, loaded, scored and seeded by everything
    that asks the registry (no other list of names to edit)."""
    import hashlib

    from w4s_ray.benchmarks import data as D
    from w4s_ray.benchmarks import registry
    from w4s_ray.benchmarks.base import NumericBenchmark, number_text
    from w4s_ray.config import load_config

    rows = [{"q": f"What is {k} + {k}?", "a": 2 * k} for k in range(6)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.jsonl").write_text(text)
    entry = D.FileEntry(path="toy/toy.jsonl", sha256=hashlib.sha256(text.encode()).hexdigest(),
                        bytes=len(text), source_repo=None, source_commit=None, source_path=None)
    files = (*D.manifest(), entry)
    monkeypatch.setattr(D, "manifest", lambda: files)
    monkeypatch.setattr(registry, "BENCHMARKS", dict(registry.BENCHMARKS))
    monkeypatch.setattr(registry, "_ORDER", dict(registry._ORDER))

    @registry.register_benchmark(order=55)
    class Toy(NumericBenchmark):
        name = "toy_add"
        files = ("toy/toy.jsonl",)
        split_sizes = {"valid": 2, "test": 4}
        source = "a test file"
        task_description = "Add two numbers."

        def build(self, data_dir):
            items = [Item(id=f"toy-{k}", question=r["q"], answer=number_text(r["a"]),
                          meta={"gold_value": float(r["a"])})
                     for k, r in enumerate(D.read_jsonl(data_dir, self.files[0]))]
            return {"valid": items[:2], "test": items[2:]}

    names = list_benchmarks()
    assert names.index("toy_add") == names.index("svamp") + 1  # order 55: after svamp (50)
    assert load_config(None).benchmarks is None  # the config default: the registry
    bm = get_benchmark("TOY_ADD", tmp_path)
    item = bm.load("valid")[1]
    assert bm.score(item, "The answer is 2.") == 1.0 and bm.score(item, "3") == 0.0
    assert set(bm.seed_workflows()) == {"cot", "cot_sc", "code_generation"}
